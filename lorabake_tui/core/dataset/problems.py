"""What a scan found wrong, with where and how to fix it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Severity(StrEnum):
    ERROR = "error"  # kohya fails, skips data, or trains the wrong thing
    WARNING = "warning"  # trains, but probably not what the user meant


@dataclass(frozen=True, slots=True)
class Problem:
    severity: Severity
    path: str  # relative to the dataset root where possible
    message: str
    hint: str
    code: str  # stable identifier, e.g. "no-prefix", for filters and tests
    concept: str | None = None  # folder name the problem belongs to, if any

    def to_json(self) -> dict:
        return {
            "severity": str(self.severity),
            "path": self.path,
            "message": f"{self.message}. {self.hint}" if self.hint else self.message,
            "code": self.code,
        }
