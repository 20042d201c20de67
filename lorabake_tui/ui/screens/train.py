from .stage import ComingScreen


class TrainScreen(ComingScreen):
    STAGE = "train"
    TITLE_TEXT = "Train"
    PLANNED = ("Start the GPU trainer as a detached process that survives SSH drops, queue "
               "runs, re-attach, and follow loss, learning rate, ETA and VRAM live.")
