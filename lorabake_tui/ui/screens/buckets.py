from .stage import ComingScreen


class BucketsScreen(ComingScreen):
    STAGE = "buckets"
    TITLE_TEXT = "Buckets"
    PLANNED = ("The bucket distribution exactly as kohya computes it (resolution, min/max, "
               "step, no-upscale), steps per epoch with per-bucket rounding, and image tools: "
               "convert to png, pad to square, resize, duplicates and low-res images.")
