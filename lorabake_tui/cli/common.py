"""What the commands share: the dataset options, JSON and table output. Every command prints
JSON through `print_json` (UTF-8, names as written, never escaped), so `jq` sees the same
text the workbench shows."""

from __future__ import annotations

import argparse
import json
import sys

# exit codes of every command but `train` (whose codes are in core/run/exit_codes.py)
OK, ERROR, USAGE, PARTIAL, CANCELLED = 0, 1, 2, 3, 130
EXIT_HELP = ("exit codes: 0 done; 1 error, nothing changed; 2 bad usage; 3 partly applied "
             "(some files were left alone: listed on stderr); 130 cancelled")


class Parser(argparse.ArgumentParser):
    """argparse with a short error: what is wrong and where to read more, two lines, never
    the whole usage."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(USAGE, f"{self.prog}: error: {message}\n"
                         f"`{self.prog} --help` lists the options\n")


def partial_or(code: int, left_alone) -> int:
    """PARTIAL when files were left alone, else `code`."""
    return PARTIAL if left_alone else code


def print_json(data: object) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False))


def print_table(rows: list[tuple[str, ...]]) -> None:
    """Columns padded to their widest cell: numbers right-aligned, text left-aligned; a rule
    under the header row."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]

    def fit(i: int, cell: str, w: int) -> str:
        return cell.rjust(w) if i and cell[:1].isdigit() else cell.ljust(w)

    for n, r in enumerate(rows):
        cells = (fit(i, c, w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        print("  ".join(cells).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))


def add_json(p: argparse.ArgumentParser, what: str = "the result") -> None:
    p.add_argument("--json", action="store_true", help=f"print {what} as JSON")


def add_dataset_options(p: argparse.ArgumentParser) -> None:
    """--reg and --caption-ext: what-if overrides of the project config's data.reg_dir and
    data.caption_extension."""
    p.add_argument("--reg", metavar="DIR", help="regularization root (default: the project "
                   "config's data.reg_dir)")
    p.add_argument("--caption-ext", default=None, metavar="EXT",
                   help="caption file extension (default: the project config's "
                   "data.caption_extension, else .txt; kohya's own default is .caption)")


def caption_ext(value: str | None) -> str | None:
    """The --caption-ext value normalised (None: not given)."""
    if value is None:
        return None
    from ..core.base.errors import LorabakeError
    from ..core.images.media import normalise_caption_ext

    try:
        return normalise_caption_ext(value)
    except ValueError as exc:
        raise LorabakeError(str(exc), "pass e.g. --caption-ext .txt") from None


def warn(message: str) -> None:
    print(f"lorabake: {message}", file=sys.stderr)
