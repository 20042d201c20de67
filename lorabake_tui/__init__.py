"""lorabake: a terminal workbench for baking SD 1.5 LoRAs."""

__version__ = "0.1.0"
