"""`bench/gpu_check --dry-run` prints its plan on any machine, GPU or not, and runs nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_dry_run_prints_the_plan_and_exits_0(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_check"), "--dry-run",
                           "--budget", "120"], capture_output=True, text=True, cwd=tmp_path,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "bf16 dense peak 989.0 TFLOP/s" in out and "plan" in out
    for row in ("b1 bf16 AdamW sdpa dim16 unet", "b16 fp16 AdamW sdpa dim16 unet",
                "b4 bf16 AdamW sdpa gc dim16 unet", "8 GB recipe: b1 fp16 dim32 both gc",
                "AdamW8bit", "xformers", "kohya side-by-side"):
        assert row in out, row
    assert "past the budget: would be skipped" in out  # 120 s cannot hold every row
    assert list(tmp_path.iterdir()) == []  # nothing written
