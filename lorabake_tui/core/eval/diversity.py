"""The trigger probe's measure: how different the images of one prompt are across seeds.

`diversity` is the mean, over every pair of seeds, of 1 - the cosine similarity of the two
final latents (each flattened and centred on its own mean). 0 means the same image every
time; latents with nothing in common score about 1. The latents are what the sampler ends on,
before the VAE: they carry the composition and colours, and comparing them costs nothing.

A word's score means little alone (a model draws varied pictures from an empty prompt, but not
equally varied at every size and step count), so the probe also draws the empty prompt over
the same seeds and reads the ratio word / empty:
  >= 0.85  free: the model has no settled picture for the word, a trigger can take it over;
  0.6-0.85 partly known: the word pulls the images somewhere; fine when that is wanted;
  < 0.6    known: the model already draws something consistent; pick a rarer word.
The cut-offs are rules of thumb, shown with the numbers so a user can judge.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

FREE_RATIO = 0.85
KNOWN_RATIO = 0.6


def diversity(latents: Sequence[np.ndarray]) -> float:
    if len(latents) < 2:
        raise ValueError("diversity needs two or more images")
    flat = np.stack([np.asarray(x, dtype=np.float64).ravel() for x in latents])
    flat -= flat.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(flat, axis=1, keepdims=True)
    flat = flat / np.where(norms == 0, 1.0, norms)
    sims = flat @ flat.T
    n = len(latents)
    pairs = sims[np.triu_indices(n, k=1)]
    return float(np.mean(1.0 - pairs))


def reading(word: float, baseline: float) -> tuple[float, str, str]:
    """(ratio, verdict, sentence) for a word's diversity against the empty prompt's."""
    ratio = word / baseline if baseline > 0 else 0.0
    if ratio >= FREE_RATIO:
        return ratio, "free", ("the images scatter as much as with no prompt: the model has "
                               "no settled picture for this word")
    if ratio >= KNOWN_RATIO:
        return ratio, "partly known", ("the word pulls the images one way: fine when that "
                                       "meaning helps, else pick a rarer word")
    return ratio, "known", ("the images agree across seeds: the model already knows this "
                            "word; pick a rarer spelling")
