"""A finding about a training config: what is wrong (or risky), the key it concerns, the line
it is on and the fix, in one sentence. The validator, the rules, the training plan and every
reader of them (Config screen, `lorabake config check`, the trainer) share this type."""

from __future__ import annotations

from dataclasses import dataclass, replace

ERROR, WARNING = "error", "warning"


@dataclass(frozen=True, slots=True)
class Finding:
    severity: str  # ERROR (train refuses) | WARNING
    key: str  # "section.key", "data.subsets[2]", "toml" for a syntax error
    line: int | None  # 1-based line in the file, when the key is written there
    message: str  # says what is wrong and how to fix it

    @property
    def is_error(self) -> bool:
        return self.severity == ERROR

    def at(self, line: int | None) -> Finding:
        return self if line is None or self.line is not None else replace(self, line=line)

    def to_json(self) -> dict:
        return {"key": self.key, "line": self.line, "message": self.message}

    def located(self, source: str) -> str:
        """`file:line: severity: message`, as compilers print it."""
        where = f"{source}:{self.line}" if self.line else source
        return f"{where}: {self.severity}: {self.message}"


def errors(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.is_error]


def ordered(findings: list[Finding]) -> list[Finding]:
    """Errors first, then by line."""
    return sorted(findings, key=lambda f: (not f.is_error, f.line or 0))
