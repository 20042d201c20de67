"""Entry point for `python -m lorabake_tui.trainer` (and `accelerate launch -m ...`)."""

import sys


def main(argv: list[str] | None = None) -> int:
    print("lorabake trainer: not built yet (see the Train stage)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
