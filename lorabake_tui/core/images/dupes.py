"""Near-duplicate images by perceptual hash (pHash, 64 bits, numpy only).

pHash: the upright image in greyscale, scaled to 32x32, a 2-D DCT-II, the 8x8 lowest
frequencies, one bit per coefficient: above their median or not. Resizing, re-encoding (JPEG
quality, WebP) and small colour shifts move few bits; a different picture differs in about
half of them. Two images are near-duplicates when the Hamming distance of their hashes is at
most a threshold (6 of 64 by default), and groups are the connected components of that
relation.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from PIL import Image

HASH_SIZE = 8
_SAMPLE = 32
DEFAULT_THRESHOLD = 6


@functools.cache
def _dct_matrix(n: int) -> np.ndarray:
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    m = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    m[0] /= np.sqrt(2.0)
    return m


def phash(image: Image.Image) -> int:
    """64-bit perceptual hash of an (already upright) image."""
    grey = image.convert("L") if image.mode != "L" else image
    small = grey.resize((_SAMPLE, _SAMPLE), Image.Resampling.LANCZOS)
    a = np.asarray(small, dtype=np.float64)
    d = _dct_matrix(_SAMPLE)
    coeffs = (d @ a @ d.T)[:HASH_SIZE, :HASH_SIZE]
    coeffs = np.round(coeffs, 6)  # a flat picture: exact zeros, not float noise
    bits = (coeffs > np.median(coeffs)).flatten()
    value = 0
    for b in bits:
        value = (value << 1) | int(b)
    return value


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


@dataclass(frozen=True, slots=True)
class Member:
    index: int  # position in the hash list
    distance: int  # to the group's first member


def group_near_duplicates(hashes: list[int], threshold: int = DEFAULT_THRESHOLD
                          ) -> list[list[Member]]:
    """Groups (two or more) of hashes within `threshold` bits of another member, each sorted
    by index, the first member the reference that distances are measured from; groups are
    ordered by their first index."""
    n = len(hashes)
    if n < 2:
        return []
    arr = np.array(hashes, dtype=np.uint64)
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    block = 1024
    for start in range(0, n, block):
        rows = arr[start:start + block]
        dist = np.bitwise_count(rows[:, None] ^ arr[None, :])
        ii, jj = np.nonzero(dist <= threshold)
        for i, j in zip((ii + start).tolist(), jj.tolist(), strict=True):
            if i < j:
                ri, rj = find(i), find(j)
                if ri != rj:
                    parent[max(ri, rj)] = min(ri, rj)
    members: dict[int, list[int]] = {}
    for i in range(n):
        members.setdefault(find(i), []).append(i)
    groups = []
    for idx in sorted(members):
        group = members[idx]
        if len(group) > 1:
            first = hashes[group[0]]
            groups.append([Member(i, hamming(first, hashes[i])) for i in group])
    return groups
