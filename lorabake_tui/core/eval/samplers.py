"""The A1111 sampler names a render takes, so every front end (the CLI, the Evaluate stage)
refuses an unknown one before anything is queued. trainer/render/samplers.py maps each name to
a diffusers scheduler; a test holds the two lists equal."""

from __future__ import annotations

from ..base.errors import LorabakeError

SAMPLER_NAMES = ("Euler a", "Euler", "Heun", "DPM2", "DPM2 a", "DPM++ 2M", "DPM++ 2M Karras",
                 "DPM++ 2M SDE", "DPM++ 2M SDE Karras", "DDIM", "PLMS", "UniPC")
DEFAULT_SAMPLER = "Euler a"


def _key(name: str) -> str:
    return " ".join(str(name).split()).casefold()


_BY_KEY = {_key(n): n for n in SAMPLER_NAMES}


def canonical_name(name: str) -> str:
    """The A1111 spelling of `name` (matched ignoring case and extra spaces)."""
    found = _BY_KEY.get(_key(name))
    if found is None:
        raise LorabakeError(f"unknown sampler {name!r}",
                            f"use one of: {', '.join(SAMPLER_NAMES)}")
    return found
