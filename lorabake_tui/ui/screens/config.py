from .stage import ComingScreen


class ConfigScreen(ComingScreen):
    STAGE = "config"
    TITLE_TEXT = "Config"
    PLANNED = ("The training configuration as TOML: presets from the guide, validation with "
               "the reason and the fix, diffs against a preset, and export to kohya "
               "sd-scripts and LoRA_Easy_Training_Scripts.")
