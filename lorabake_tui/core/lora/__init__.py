"""LoRA files already trained (lorabake's, kohya's, LyCORIS's): what is in one (`info`) and
DyLoRA rank extraction (`resize`). Reads safetensors headers and raw bytes; never torch."""
