"""The words for a job's files on screen: human sizes and which checkpoint a LoRA save is."""

from __future__ import annotations

import pytest

from lorabake_tui.core.run.folder import epoch_lora_name, final_lora_name, step_lora_name
from lorabake_tui.jobs.notify import checkpoint_label, human_size


@pytest.mark.parametrize(("size", "text"), [
    (0, "0 B"), (512, "512 B"), (999, "999 B"),
    (364 * 1024, "364 KB"),  # the checkpoint: it read "0 MB"
    (1536, "1.5 KB"), (10 * 1024, "10 KB"),
    (1024 * 1024 - 100, "1.0 MB"),  # rounds up into the next unit, never "1024 KB"
    (2_400_000, "2.3 MB"), (144 * 2**20, "144 MB"), (int(2.1 * 2**30), "2.1 GB"),
    (5 * 2**40, "5120 GB"),  # no unit beyond GB
])
def test_human_size(size, text):
    assert human_size(size) == text


def test_checkpoint_labels_come_from_the_file_name():
    def save(name: str, **extra) -> dict:
        return {"type": "save", "path": f"/runs/mira-1/{name}", **extra}

    assert checkpoint_label(save(epoch_lora_name("mira", 3), epoch=3, step=119), "mira") \
        == "epoch 3"
    # a stop in the first epoch: the event's epoch is 0, the file says which step
    assert checkpoint_label(save(step_lora_name("mira", 119), epoch=0, step=119), "mira") \
        == "step 119"
    assert checkpoint_label(save(final_lora_name("mira"), epoch=4, step=160), "mira") == "final"
    # without the run's output name (an older start event): by the name's ending
    assert checkpoint_label(save(step_lora_name("mira", 7))) == "step 7"
    assert checkpoint_label(save(final_lora_name("mira"))) == "final"
    # a file of another name: the step it was saved at
    assert checkpoint_label(save("renamed.bin", step=50), "mira") == "step 50"
    assert checkpoint_label({"type": "save"}, "mira") == "LoRA"
