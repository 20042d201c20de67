"""The trainer's data loading refuses images over the core's pixel limit with the scan's own
words, before decoding a pixel: whether the plan knew (an error finding) or the file was
swapped for a bigger one after the plan was made."""

from __future__ import annotations

import random
import warnings

import pytest

from lorabake_tui.core.base.errors import LorabakeError
from lorabake_tui.core.config.schema import TrainingSettings
from lorabake_tui.core.dataset.scan import scan_dataset
from lorabake_tui.core.project.plan import plan_training
from lorabake_tui.trainer.data import load_pixels, load_train_data

from ..support.crafted import png_claiming
from ..support.train_fixtures import make_dataset

BIG = "40000x40000 = 1600 MP, over the 179 MP limit"


def plan_for(root):
    s = TrainingSettings().replace("buckets", resolution=64, min=64, max=128, step=64)
    s = s.replace("general", batch_size=2).replace("data", train_dir=root)
    return plan_training(s, scan_dataset(root, caption_ext=".txt"))


def test_a_plan_with_an_image_over_the_limit_is_refused_with_its_message(tmp_path):
    root = make_dataset(tmp_path, images=2)
    png_claiming(root / "2_mychar" / "big.png", 40000, 40000)
    plan = plan_for(root)
    with pytest.raises(LorabakeError, match=f"2_mychar/big.png: {BIG}"):
        load_train_data(plan)


def test_an_image_swapped_for_a_bomb_after_planning_is_refused_before_decoding(tmp_path):
    root = make_dataset(tmp_path, images=2)
    data = load_train_data(plan_for(root))
    sample = data.samples[0]
    assert load_pixels(sample, flip=False).shape[0] == 3  # the real image loads
    png_claiming(sample.path, 40000, 40000)  # decoding this would allocate 4.8 GB
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and no raw DecompressionBombWarning
        with pytest.raises(LorabakeError, match=f"{sample.key}: {BIG}") as exc:
            load_pixels(sample, flip=True, crop_rng=random.Random(0))
    assert "shrink it below the limit" in exc.value.hint
