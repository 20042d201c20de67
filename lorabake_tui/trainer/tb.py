"""TensorBoard scalars for a run (logging.tensorboard): per step the loss, the average loss
(the same window as the dashboard's), the learning rate of each parameter group and the
speed, in the run folder's `tensorboard/`. The `tensorboard` package is optional (the
`tensorboard` extra): without it the run says so once and trains on; events.jsonl holds the
same numbers either way."""

from __future__ import annotations

from pathlib import Path

from ..core.run.folder import TENSORBOARD_DIR

MISSING = ("logging.tensorboard is on but the tensorboard package is not installed, so no "
           "TensorBoard logs are written (training goes on; events.jsonl has every number): "
           "pip install tensorboard")


class TensorBoard:
    def __init__(self, writer) -> None:
        self.writer = writer

    @classmethod
    def open(cls, run_dir: Path, warn) -> TensorBoard | None:
        """A writer into run_dir/tensorboard, or None after one `warn(MISSING)`."""
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # torch's writer needs the tensorboard package itself
            warn(MISSING)
            return None
        return cls(SummaryWriter(log_dir=str(Path(run_dir) / TENSORBOARD_DIR)))

    def step(self, step: int, *, loss: float, avg_loss: float, lrs: dict[str, float],
             it_per_s: float) -> None:
        w = self.writer
        w.add_scalar("loss/current", loss, step)
        w.add_scalar("loss/average", avg_loss, step)
        for name, lr in lrs.items():
            w.add_scalar(f"lr/{name}", lr, step)
        w.add_scalar("speed/it_per_s", it_per_s, step)

    def close(self) -> None:
        self.writer.close()
