"""Caption statistics: frequencies, outliers, and which tags tell the concepts apart."""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field

from .store import CaptionRecord, CaptionStore

BIG_CAPTION_BYTES = 1024


@dataclass(slots=True)
class Outlier:
    rel: str
    reason: str


@dataclass(slots=True)
class ConceptTags:
    folder: str
    images: int
    # (tag, share in this concept, share in the others): tags that set the concept apart
    distinctive: list[tuple[str, float, float]] = field(default_factory=list)


@dataclass(slots=True)
class TagStats:
    images: int
    captioned: int
    frequencies: list[tuple[str, int]]
    empty: list[str]
    missing: list[str]
    singletons: list[str]  # tags on exactly one image
    outliers: list[Outlier]
    concepts: list[ConceptTags]

    def to_json(self) -> dict:
        return {
            "images": self.images, "captioned": self.captioned,
            "tags": [{"tag": t, "count": n} for t, n in self.frequencies],
            "empty": self.empty, "missing": self.missing, "singletons": self.singletons,
            "outliers": [{"path": o.rel, "reason": o.reason} for o in self.outliers],
            "concepts": [{"folder": c.folder, "images": c.images,
                          "distinctive": [{"tag": t, "share": round(a, 3),
                                           "share_elsewhere": round(b, 3)}
                                          for t, a, b in c.distinctive]}
                         for c in self.concepts],
        }


def outliers(records: list[CaptionRecord]) -> list[Outlier]:
    """Captions a tagger probably got wrong: over 1 KB, or far more tags than the rest."""
    sizes = [len(r.tags) for r in records if r.exists and r.tags]
    out: list[Outlier] = []
    if not sizes:
        return out
    med = statistics.median(sizes)
    mad = statistics.median(abs(s - med) for s in sizes) or 1
    limit = max(med + 6 * mad, med * 2.5)
    for r in records:
        if r.raw is not None and len(r.raw) > BIG_CAPTION_BYTES:
            out.append(Outlier(r.rel, f"{len(r.raw)} bytes (over {BIG_CAPTION_BYTES})"))
        elif r.tags and len(r.tags) > limit:
            out.append(Outlier(r.rel, f"{len(r.tags)} tags (most have about {med:g})"))
    return out


def concept_contrast(store: CaptionStore, records: list[CaptionRecord], *, top: int = 8,
                     min_gap: float = 0.3) -> list[ConceptTags]:
    """Per concept, tags much more common in it than in the other concepts: the overlap
    reasoning behind per-outfit triggers."""
    by_folder: dict[str, list[CaptionRecord]] = {}
    for r in records:
        by_folder.setdefault(r.folder, []).append(r)
    totals: Counter[str] = Counter()
    per: dict[str, Counter[str]] = {}
    for folder, recs in by_folder.items():
        c: Counter[str] = Counter()
        for r in recs:
            c.update(r.keys)
        per[folder] = c
        totals.update(c)
    n_all = len(records)
    out = []
    for folder, recs in sorted(by_folder.items()):
        n_in, n_out = len(recs), n_all - len(recs)
        rows = []
        for key, k in per[folder].items():
            share_in = k / n_in
            share_out = (totals[key] - k) / n_out if n_out else 0.0
            if share_in - share_out >= min_gap:
                rows.append((store.display(key), share_in, share_out))
        rows.sort(key=lambda t: (t[2] - t[1], t[0]))
        out.append(ConceptTags(folder, n_in, rows[:top]))
    return out


def tag_stats(store: CaptionStore, records: list[CaptionRecord] | None = None) -> TagStats:
    recs = store.records if records is None else records
    freqs = store.frequencies(recs)
    return TagStats(
        images=len(recs),
        captioned=sum(1 for r in recs if r.exists and r.tags),
        frequencies=freqs,
        empty=[r.rel for r in recs if r.exists and r.editable and not r.tags],
        missing=[r.rel for r in recs if not r.exists],
        singletons=[t for t, n in freqs if n == 1],
        outliers=outliers(recs),
        concepts=concept_contrast(store, recs),
    )
