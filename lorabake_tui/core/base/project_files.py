"""Where a project keeps its own files: `<training root>/.lorabake/`. The one list of those
names; the journal, the image tools, the auto-tagger, the trainer's latent cache and the
project model all take their paths from here.

The folder starts with a dot because kohya (and lorabake's scan) skip dotted folders, so
nothing in it is ever mistaken for a concept folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

STATE_DIRNAME = ".lorabake"
CONFIG_NAME = "training.toml"  # the project's training config
# paths relative to the training root, as the journal records them
ORIGINALS_REL = f"{STATE_DIRNAME}/originals"
CONFIG_REL = f"{STATE_DIRNAME}/{CONFIG_NAME}"


@dataclass(frozen=True, slots=True)
class ProjectFiles:
    root: Path  # the training root: the N_name concept folders live here

    @property
    def state(self) -> Path:
        return self.root / STATE_DIRNAME

    @property
    def config(self) -> Path:
        """The training config every stage, command and the trainer read."""
        return self.root / CONFIG_REL

    @property
    def prefs(self) -> Path:
        """Per-dataset preferences (how tags are written)."""
        return self.state / "project.toml"

    @property
    def journal(self) -> Path:
        return self.state / "journal"

    @property
    def lock(self) -> Path:
        """One writer per dataset across processes."""
        return self.state / "lock"

    @property
    def originals(self) -> Path:
        """Images the image tools replaced, kept for undo."""
        return self.root / ORIGINALS_REL

    @property
    def latents(self) -> Path:
        """The trainer's disk cache of encoded images."""
        return self.state / "latents"

    @property
    def autotag(self) -> Path:
        """The auto-tagger's resumable probabilities and the dialog's last values."""
        return self.state / "autotag"

    @property
    def demo_marker(self) -> Path:
        return self.state / "demo.json"
