"""A LoRA's ss_* metadata does not depend on the order the dataset was listed in, nor on
Python's string hashing: two builds from the same dataset give byte-identical JSON."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import subprocess
import sys
from pathlib import Path

from lorabake_tui.core.project.plan import TrainingPlan
from lorabake_tui.trainer.data import TrainData, load_train_data
from lorabake_tui.trainer.metadata import RunFacts, training_metadata

from ..support.helpers import make_concept
from ..support.paths import REPO
from ..support.plans import plan_of

CAPTIONS = ["mira, 1girl, red hair, smile, outdoors", "1girl, mira, blue sky, smile",
            "solo, mira, red hair, night, city lights", "mira, Smile, hat, red hair"]


def make_tagged_dataset(root: Path) -> Path:
    for folder, n in (("10_mira", 4), ("3_mira_hat", 3), ("1_misc", 2)):
        d = make_concept(root, folder, n, caption=None)
        for i in range(n):
            (d / f"img_{i:03d}.txt").write_text(CAPTIONS[(i + n) % len(CAPTIONS)] + "\n")
    return root


def metadata_json(plan: TrainingPlan, data: TrainData) -> str:
    run = RunFacts(session_id="s", started_at=1.0, saved_at=2.0, steps=10, epoch=1,
                   network_args={}, optimizer_class="torch.optim.adamw.AdamW",
                   sd_model_name="m", sd_model_hash=None, new_sd_model_hash=None)
    return json.dumps(training_metadata(plan.settings, plan, data, run), ensure_ascii=False)


def test_shuffled_listing_orders_give_byte_identical_metadata(tmp_path):
    plan = plan_of(make_tagged_dataset(tmp_path))
    data = load_train_data(plan)
    first = metadata_json(plan, data)
    for seed in range(6):
        samples = list(data.samples)
        random.Random(seed).shuffle(samples)
        assert metadata_json(plan, dataclasses.replace(data, samples=samples)) == first
    meta = json.loads(first)
    freq = json.loads(meta["ss_tag_frequency"])
    assert list(freq) == sorted(freq) == ["10_mira", "1_misc", "3_mira_hat"]
    assert all(list(tags) == sorted(tags) for tags in freq.values())
    assert freq["10_mira"]["mira"] == 4 and freq["3_mira_hat"]["red hair"] == 2
    assert list(json.loads(meta["ss_dataset_dirs"])) == ["10_mira", "1_misc", "3_mira_hat"]


SCRIPT = """
import sys
from pathlib import Path
from lorabake_tui.trainer.data import load_train_data
from tests.support.plans import plan_of
from tests.trainer.test_metadata_order import metadata_json
plan = plan_of(Path(sys.argv[1]))
print(metadata_json(plan, load_train_data(plan)))
"""


def test_two_processes_with_different_string_hashing_write_the_same_metadata(tmp_path):
    """What two identical runs are: the tags of a caption are a set, whose order follows
    PYTHONHASHSEED (random per process unless set)."""
    root = make_tagged_dataset(tmp_path)
    outs = set()
    for seed in ("1", "2", "3"):
        env = dict(os.environ, PYTHONHASHSEED=seed, PYTHONPATH=str(REPO))
        proc = subprocess.run([sys.executable, "-c", SCRIPT, str(root)], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=120, check=True)
        outs.add(proc.stdout)
    assert len(outs) == 1
