"""Per-dataset settings kept in <root>/.lorabake/project.toml (they travel with the data)."""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path

import tomli_w

from ..base.atomic import atomic_write_text
from ..base.errors import LorabakeError
from ..base.project_files import ProjectFiles
from ..captions.tags import WRITE_STYLES


@dataclass(slots=True)
class ProjectSettings:
    write_style: str = "keep"  # how tags are written when lorabake writes a caption

    @classmethod
    def load(cls, root: Path) -> ProjectSettings:
        path = ProjectFiles(Path(root)).prefs
        if not path.is_file():
            return cls()
        try:
            data = tomllib.loads(path.read_text("utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise LorabakeError(f"{path} is not valid TOML: {exc}",
                                "fix or delete it (it only holds the write style)") from exc
        s = cls()
        style = data.get("write_style", s.write_style)
        if style not in WRITE_STYLES:
            raise LorabakeError(f"{path}: write_style must be one of {', '.join(WRITE_STYLES)}",
                                f"found {style!r}")
        s.write_style = style
        return s

    def save(self, root: Path) -> None:
        path = ProjectFiles(Path(root)).prefs
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, tomli_w.dumps(asdict(self)))
