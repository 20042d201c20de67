"""All captions of a dataset in memory, with tag counts kept up to date incrementally.

Every bulk tag operation (CLI, Tags screen, later the auto-tagger) goes through here: select
images (scope), plan (run a pure tag operation on each caption, keep those that change),
preview, apply (one journal entry; files changed on disk since they were read, read-only
ones and links out of the dataset are skipped and reported), and refresh after undo/redo.
"""

from __future__ import annotations

import dataclasses
import os
import stat
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..base.errors import LorabakeError
from ..base.journal import ChangeSet, Entry, Journal, Write
from ..dataset.scan import Dataset
from .caption_file import CaptionDecodeError, CaptionText, format_caption, parse_caption
from .tagfilter import Filter, Subject
from .tags import styled, tag_key

TagFn = Callable[[list[str]], list[str]]


@dataclass(slots=True)
class CaptionRecord:
    rel: str  # caption path relative to the dataset root (may not exist yet)
    image_rel: str  # the image it belongs to
    folder: str  # concept folder name
    tags: list[str] = field(default_factory=list)
    keys: frozenset[str] = frozenset()
    exists: bool = False
    text: CaptionText | None = None  # None: no file yet, or unreadable
    raw: bytes | None = None  # the bytes as last read (what undo restores and conflicts test)
    stat: tuple[int, int] | None = None  # (size, mtime_ns) when read
    error: str | None = None  # why it cannot be edited (not UTF-8, unreadable)

    def set_tags(self, tags: list[str]) -> None:
        self.tags = tags
        self.keys = frozenset(tag_key(t) for t in tags)

    @property
    def editable(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True)
class PlannedChange:
    record: CaptionRecord
    old_tags: list[str]  # as planned: the record itself is updated once applied
    new_tags: list[str]
    new_bytes: bytes


@dataclass(slots=True)
class CaptionPlan:
    label: str
    changes: list[PlannedChange]
    scanned: int  # captions the operation looked at
    not_editable: list[str]  # captions in scope it had to leave alone, with the reason

    @property
    def files(self) -> int:
        return len(self.changes)


@dataclass(slots=True)
class ApplyResult:
    entry: Entry
    written: int
    skipped: list[str]  # left alone, each with the reason (changed on disk, read-only, ...)


def subject(rec: CaptionRecord) -> Subject:
    return Subject(rec.keys, rec.folder, len(rec.tags), rec.exists)


class CaptionStore:
    def __init__(self, root: Path, caption_ext: str, style: str = "keep") -> None:
        self.root = Path(root).resolve()
        self.caption_ext = caption_ext
        self.style = style
        self.records: list[CaptionRecord] = []
        self.by_rel: dict[str, CaptionRecord] = {}
        self.counts: Counter[str] = Counter()  # key -> images having the tag
        self.forms: dict[str, Counter[str]] = {}  # key -> written forms seen

    # ---- loading ------------------------------------------------------------------------
    @classmethod
    def load(cls, dataset: Dataset, *, style: str = "keep",
             include_reg: bool = False) -> CaptionStore:
        store = cls(dataset.root, dataset.caption_ext, style)
        for concept in dataset.concepts:
            if concept.is_reg and not include_reg:
                continue
            rel_folder = store._rel(concept.path) + os.sep  # one relpath per folder
            for item in concept.images:
                stem = item.name[: -len(item.ext)]
                rec = CaptionRecord(rel_folder + stem + dataset.caption_ext,
                                    rel_folder + item.name, concept.folder)
                if rec.rel in store.by_rel:
                    continue  # two images sharing one stem share one caption: one record
                store._read(rec)
                store.records.append(rec)
                store.by_rel[rec.rel] = rec
                store._count(rec, +1)
        return store

    def _rel(self, path: Path) -> str:
        return os.path.relpath(path, self.root)

    def _read(self, rec: CaptionRecord) -> None:
        path = self.root / rec.rel
        rec.error = None
        try:
            # non-blocking, then checked: a FIFO named like a caption must not hang the read
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
            try:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode):
                    rec.exists, rec.error = True, "not a regular file: left alone"
                    rec.text, rec.raw, rec.stat = None, None, None
                    rec.set_tags([])
                    return
                with open(fd, "rb", closefd=False) as fh:
                    raw = fh.read()
            finally:
                os.close(fd)
        except FileNotFoundError:
            rec.exists, rec.text, rec.raw, rec.stat = False, None, None, None
            rec.set_tags([])
            return
        except OSError as exc:
            rec.exists, rec.error = True, f"cannot read: {exc.strerror}"
            rec.set_tags([])
            return
        rec.exists, rec.raw, rec.stat = True, raw, (st.st_size, st.st_mtime_ns)
        try:
            rec.text = parse_caption(raw)
        except CaptionDecodeError as exc:
            rec.text, rec.error = None, f"{exc}: re-save it as UTF-8"
            rec.set_tags([])
            return
        rec.set_tags(list(rec.text.tags))

    def _count(self, rec: CaptionRecord, sign: int) -> None:
        counts = self.counts
        for key in rec.keys:
            n = counts[key] + sign
            if n > 0:
                counts[key] = n
            else:
                del counts[key]
        for tag in rec.tags:
            self._count_form(tag, sign)

    def _count_form(self, tag: str, sign: int) -> None:
        """One more (or fewer) caption writing `tag` this way."""
        key = tag_key(tag)
        forms = self.forms.get(key)
        if forms is None:
            forms = self.forms[key] = Counter()
        n = forms[tag] + sign
        if n > 0:
            forms[tag] = n
        else:
            del forms[tag]

    def _recount(self, rec: CaptionRecord, old_tags: list[str], old_keys: frozenset[str]
                 ) -> None:
        """The counts after `rec` changed from `old_tags`: only what differs is counted again
        (an edit changes a tag or two of twenty)."""
        counts = self.counts
        for key in old_keys - rec.keys:
            n = counts[key] - 1
            if n > 0:
                counts[key] = n
            else:
                del counts[key]
        for key in rec.keys - old_keys:
            counts[key] += 1
        old, new = Counter(old_tags), Counter(rec.tags)
        for tag, sign in [*((t, -1) for t in (old - new).elements()),
                          *((t, +1) for t in (new - old).elements())]:
            self._count_form(tag, sign)

    # ---- reading ------------------------------------------------------------------------
    def display(self, key: str) -> str:
        """The written form most captions use for a tag."""
        forms = self.forms.get(key)
        return forms.most_common(1)[0][0] if forms else key

    def frequencies(self, records: Iterable[CaptionRecord] | None = None
                    ) -> list[tuple[str, int]]:
        """(tag as written, images with it), most frequent first, then by name."""
        if records is None:
            counts = self.counts
        else:
            counts = Counter()
            for rec in records:
                counts.update(rec.keys)
        return sorted(((self.display(k), n) for k, n in counts.items()),
                      key=lambda kv: (-kv[1], tag_key(kv[0])))

    def select(self, match: Callable[[CaptionRecord], bool] | None = None,
               concept: str | None = None) -> list[CaptionRecord]:
        out = self.records
        if concept is not None:
            if not any(r.folder == concept for r in self.records):
                raise LorabakeError(f"no concept folder named {concept}")
            out = [r for r in out if r.folder == concept]
        if match is not None:
            out = [r for r in out if match(r)]
        return out

    def matching(self, flt: Filter | None = None, concept: str | None = None
                 ) -> list[CaptionRecord]:
        """The scope of an operation: a concept folder and/or a filter expression."""
        if flt is None:
            return self.select(concept=concept)
        return self.select(lambda r: flt.matches(subject(r)), concept)

    # ---- changing -----------------------------------------------------------------------
    def plan(self, fn: TagFn, records: Iterable[CaptionRecord], label: str, *,
             create_missing: bool = False, style_new: bool = True) -> CaptionPlan:
        """Run `fn` on each caption; keep those whose tags change. Nothing is written.

        A caption the operation changes is written in the project's style (`style_new`;
        off for `normalize`, which is itself a style); one it does not change is never
        rewritten, whatever the style."""
        changes: list[PlannedChange] = []
        skipped: list[str] = []
        scanned = 0
        for rec in records:
            if not rec.editable:
                skipped.append(f"{rec.rel}: {rec.error}")
                continue
            if not rec.exists and not create_missing:
                continue
            scanned += 1
            new = fn(list(rec.tags))
            if new == rec.tags or (not rec.exists and not new):
                continue
            if style_new and self.style != "keep":
                # a caption being written anyway is written wholly in the project's style
                new = [styled(t, self.style) for t in new]
            changes.append(PlannedChange(rec, list(rec.tags), new,
                                         format_caption(rec.text, new)))
        return CaptionPlan(label, changes, scanned, skipped)

    def apply(self, plan: CaptionPlan, journal: Journal | None = None,
              op: str = "tags") -> ApplyResult:
        if not plan.changes:
            raise LorabakeError("nothing to change: no caption in scope is affected")
        journal = journal or Journal(self.root)
        cs = ChangeSet()
        for ch in plan.changes:
            cs.write(ch.record.rel, ch.new_bytes, ch.record.raw, ch.record.stat)
        entry = journal.apply(op, plan.label, cs, skip_conflicts=True)
        # a caption that is a link was written at its target: the change names both
        applied = {ch.name for ch in entry.changes if isinstance(ch, Write)}
        targets = {ch.path for ch in entry.changes if isinstance(ch, Write) and ch.via}
        for ch in plan.changes:
            rec = ch.record
            if rec.rel not in applied or rec.rel in targets:
                # left alone (someone else's edit, read-only, a link out), or written through
                # a link to it: show what is on disk now
                self.refresh([rec.rel])
                continue
            st = os.stat(os.path.join(self.root, rec.rel))
            rec.raw, rec.stat, rec.exists = ch.new_bytes, (st.st_size, st.st_mtime_ns), True
            # the new text is known: no need to parse the bytes we just wrote
            rec.text = (CaptionText(tuple(ch.new_tags)) if rec.text is None
                        else dataclasses.replace(rec.text, tags=tuple(ch.new_tags)))
            old_tags, old_keys = rec.tags, rec.keys
            rec.set_tags(list(ch.new_tags))
            self._recount(rec, old_tags, old_keys)
        return ApplyResult(entry, len(applied), entry.skipped)

    def refresh(self, rels: Iterable[str]) -> None:
        """Re-read captions (after undo/redo or an outside edit), updating counts."""
        for rel in rels:
            rec = self.by_rel.get(rel)
            if rec is None:
                continue
            self._count(rec, -1)
            self._read(rec)
            self._count(rec, +1)

    def refresh_entry(self, entry: Entry) -> None:
        self.refresh(rel for ch in entry.changes if isinstance(ch, Write)
                     for rel in (ch.path, ch.via) if rel)
