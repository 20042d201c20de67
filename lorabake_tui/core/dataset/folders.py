"""Concept folder names `N_name`: the single definition used by scan, balance and export."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FolderName:
    repeats: int | None  # None: the prefix is not an integer, so kohya skips the folder
    name: str  # the class token (text after the first "_")


def parse_folder_name(folder: str) -> FolderName:
    """Split as kohya does: on the first `_`; the prefix must convert with int()."""
    prefix, _, rest = folder.partition("_")
    try:
        return FolderName(int(prefix), rest)  # "10" alone is 10 repeats, empty class token
    except ValueError:
        return FolderName(None, folder)


def format_folder_name(repeats: int, name: str) -> str:
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    return f"{repeats}_{name}" if name else str(repeats)
