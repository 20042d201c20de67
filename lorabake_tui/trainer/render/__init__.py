"""Rendering with the base model and LoRA files: the engine behind evaluation grids, the
trigger probe and training's preview samples (torch and diffusers; never imported by the UI).

engine.py: RenderEngine (load once, switch LoRAs in place, deterministic renders);
lora_apply.py: a LoRA-family file as per-module deltas; samplers.py: A1111 sampler names.
"""
