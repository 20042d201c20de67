"""Scan a kohya-style dataset: concept folders, images, captions and everything wrong with them.

A scan reads directory listings, image headers and caption bytes; it never decodes pixels and
never writes. Problems are collected, not raised, so one bad file never hides the others.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from ..base.errors import LorabakeError
from ..images.imageinfo import ImageReadError, read_image_header
from ..images.media import DEFAULT_CAPTION_EXT, UNREADABLE_BY_KOHYA_EXTS, image_ext
from .folders import parse_folder_name
from .problems import Problem, Severity
from .steps import concept_samples


class CaptionState(StrEnum):
    OK = "ok"
    MISSING = "missing"
    EMPTY = "empty"
    NOT_UTF8 = "not-utf8"


@dataclass(slots=True)
class ImageItem:
    folder: Path
    name: str
    ext: str  # lowercased
    width: int | None = None  # the stored size (EXIF orientation not applied), as kohya reads it
    height: int | None = None
    orientation: int = 1  # EXIF orientation 1-8 from the header
    readable: bool = True
    caption_name: str | None = None
    caption: CaptionState = CaptionState.MISSING

    # Paths are built on demand: a scan of 10k images should not pay for 20k Path objects.
    @property
    def path(self) -> Path:
        return self.folder / self.name

    @property
    def caption_path(self) -> Path | None:
        return self.folder / self.caption_name if self.caption_name else None


@dataclass(slots=True)
class Concept:
    folder: str
    path: Path
    name: str
    repeats: int | None
    is_reg: bool
    images: list[ImageItem] = field(default_factory=list, repr=False)  # 10k in a repr: no
    problems: int = 0

    @property
    def image_count(self) -> int:
        return len(self.images)

    @property
    def captions_missing(self) -> int:
        return sum(1 for im in self.images if im.caption is CaptionState.MISSING)

    @property
    def samples(self) -> int:
        """Samples per epoch from this folder as kohya counts them (0 when kohya skips it)."""
        return concept_samples(self.image_count, self.repeats)


@dataclass(slots=True)
class Dataset:
    root: Path
    reg_root: Path | None
    caption_ext: str
    concepts: list[Concept]
    problems: list[Problem]

    @property
    def train_concepts(self) -> list[Concept]:
        return [c for c in self.concepts if not c.is_reg]

    @property
    def reg_concepts(self) -> list[Concept]:
        return [c for c in self.concepts if c.is_reg]

    def concept(self, folder: str, *, is_reg: bool = False) -> Concept | None:
        for c in self.concepts:
            if c.folder == folder and c.is_reg == is_reg:
                return c
        return None

    def to_json(self) -> dict:
        return {
            "root": str(self.root),
            "reg_root": str(self.reg_root) if self.reg_root else None,
            "caption_ext": self.caption_ext,
            "concepts": [
                {
                    "folder": c.folder,
                    "name": c.name,
                    "repeats": c.repeats,
                    "images": c.image_count,
                    "captions_missing": c.captions_missing,
                    "is_reg": c.is_reg,
                }
                for c in self.concepts
            ],
            "problems": [p.to_json() for p in self.problems],
        }


ProgressFn = Callable[[int, int], None]  # (images examined, images in all)
CancelFn = Callable[[], bool]


class ScanCancelled(Exception):
    pass


def scan_dataset(
    root: Path | str,
    reg_root: Path | str | None = None,
    *,
    caption_ext: str = DEFAULT_CAPTION_EXT,
    progress: ProgressFn | None = None,
    cancelled: CancelFn | None = None,
) -> Dataset:
    root = _check_root(Path(root), "training")
    reg = _check_root(Path(reg_root), "regularization") if reg_root else None
    problems: list[Problem] = []
    jobs: list[tuple[Path, Path, bool]] = []  # (folder, base for relative paths, is_reg)
    for base, is_reg in ((root, False), (reg, True)):
        if base is None:
            continue
        sub_dirs, loose = _list_root(base)
        if loose:
            problems.append(_root_images_problem(base, root, loose, is_reg))
        if not sub_dirs and not loose:
            problems.append(Problem(
                Severity.WARNING, _rel(base, root), "no concept folders here",
                "create folders named N_name (e.g. 10_mychar) holding the images",
                "no-concepts"))
        jobs.extend((d, root, is_reg) for d in sub_dirs)

    listings = [(_list_concept(folder), folder, base, is_reg) for folder, base, is_reg in jobs]
    total = sum(sum(1 for n in names if image_ext(n)) for (names, _), *_ in listings)
    seen = 0

    def tick() -> None:
        nonlocal seen
        seen += 1
        if seen % 256 == 0:
            if cancelled is not None and cancelled():
                raise ScanCancelled()
            if progress is not None:
                progress(seen, total)

    concepts: list[Concept] = []
    for (names, subdirs), folder, base, is_reg in listings:
        concept, found = _scan_concept(folder, base, is_reg, caption_ext, names, subdirs, tick)
        concepts.append(concept)
        problems.extend(found)
    if progress is not None:
        progress(total, total)
    return Dataset(root, reg, caption_ext, concepts, problems)


def _check_root(path: Path, what: str) -> Path:
    if not path.exists():
        raise LorabakeError(f"{what} folder {path} does not exist", "check the path")
    if not path.is_dir():
        raise LorabakeError(f"{what} folder {path} is not a directory",
                            "give the folder that holds the N_name concept folders")
    return path.resolve()


def _list_root(base: Path) -> tuple[list[Path], list[str]]:
    dirs: list[Path] = []
    loose: list[str] = []
    with os.scandir(base) as it:
        for entry in it:
            if entry.name.startswith("."):
                continue  # .lorabake and friends; kohya's glob skips dotfiles too
            if entry.is_dir():
                dirs.append(Path(entry.path))
            elif image_ext(entry.name):
                loose.append(entry.name)
    dirs.sort(key=lambda p: p.name)
    return dirs, sorted(loose)


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root)) or "."
    except ValueError:
        return str(path)


def _root_images_problem(base: Path, root: Path, loose: list[str], is_reg: bool) -> Problem:
    where = "regularization root" if is_reg else "training root"
    return Problem(
        Severity.ERROR, _rel(base, root),
        f"{len(loose)} image(s) directly in the {where}: kohya finds nothing there",
        "move them into a concept folder such as 10_name (N = repeats)", "root-images")


def _list_concept(folder: Path) -> tuple[set[str], list[str]]:
    """(file names, sub-folder names) of one concept folder, dotfiles skipped."""
    names: set[str] = set()
    subdirs: list[str] = []
    with os.scandir(folder) as it:
        for entry in it:
            if entry.name.startswith("."):
                continue
            if entry.is_dir():
                subdirs.append(entry.name)
            else:
                names.add(entry.name)
    return names, subdirs


def _scan_concept(folder: Path, root: Path, is_reg: bool, caption_ext: str,
                  names: set[str], subdirs: list[str], tick: Callable[[], None]
                  ) -> tuple[Concept, list[Problem]]:
    parsed = parse_folder_name(folder.name)
    concept = Concept(folder.name, folder, parsed.name, parsed.repeats, is_reg)
    rel_folder = _rel(folder, root)
    problems: list[Problem] = []

    def add(sev: Severity, path: str, msg: str, hint: str, code: str) -> None:
        problems.append(Problem(sev, path, msg, hint, code, concept=folder.name))

    images = sorted((n, e) for n in names if (e := image_ext(n)))
    by_stem: dict[str, list[str]] = {}
    base = str(folder) + os.sep  # plain strings in the hot loop: Path costs add up at 10k
    for name, ext in images:
        tick()
        stem = name[: -len(ext)]
        by_stem.setdefault(stem, []).append(name)
        item = ImageItem(folder, name, ext)
        real_ext = name[-len(ext):]
        if real_ext != ext and real_ext != ext.upper():
            # kohya globs *.png and *.PNG only: on Linux it never sees a.Png
            add(Severity.WARNING, f"{rel_folder}/{name}",
                f"kohya does not see the mixed-case extension {real_ext}",
                f"rename it to {stem}{ext}", "ext-case")
        _read_header(item, base + name, rel_folder, add)
        cap_name = stem + caption_ext
        if cap_name in names:
            item.caption_name = cap_name
            item.caption = _check_caption(base + cap_name, f"{rel_folder}/{cap_name}", add)
        concept.images.append(item)

    for stem, group in by_stem.items():
        if len(group) > 1:
            add(Severity.ERROR, f"{rel_folder}/{stem}{caption_ext}",
                f"{' and '.join(group)} share one caption stem",
                "rename one image (kohya gives both the same caption)", "shared-stem")

    missing = sum(1 for im in concept.images if im.caption is CaptionState.MISSING)
    if missing:
        add(Severity.WARNING, rel_folder,
            f"{missing} image(s) without a {caption_ext} caption",
            f"kohya trains them with the class token '{parsed.name}' only; tag them",
            "missing-caption")

    if parsed.repeats is None:
        hint = "rename it N_name (e.g. 10_" + folder.name + ") or balance the dataset"
        if not images and any(parse_folder_name(s).repeats is not None for s in subdirs):
            hint = f"it holds concept folders itself: open {folder} as the training root"
        add(Severity.ERROR, rel_folder,
            f"folder has no repeat prefix: kohya skips it ({len(images)} images not trained)",
            hint, "no-prefix")
    elif parsed.repeats < 1:
        add(Severity.ERROR, rel_folder,
            f"repeats {parsed.repeats} < 1: kohya skips this folder",
            "set repeats to 1 or more (r on the Concepts screen, or balance)", "bad-repeats")
    if not images:
        add(Severity.WARNING, rel_folder, "no images in this folder",
            "add images or remove the folder", "empty-folder")
    if subdirs and images:
        add(Severity.WARNING, rel_folder,
            f"sub-folder(s) {', '.join(sorted(subdirs)[:3])} are not read (kohya does not recurse)",
            "move their images up or make them concept folders", "nested-folder")
    concept.problems = len(problems)
    return concept, problems


def _read_header(item: ImageItem, path: str, rel_folder: str, add) -> None:
    if item.ext in UNREADABLE_BY_KOHYA_EXTS:
        add(Severity.ERROR, f"{rel_folder}/{item.name}", f"kohya cannot read {item.ext} images",
            "convert it to .png first (image tools)", "unsupported-type")
    try:
        header = read_image_header(path)
    except ImageReadError as exc:
        item.readable = False
        add(Severity.ERROR, f"{rel_folder}/{item.name}", f"unreadable image: {exc}",
            "replace or delete the file", "bad-image")
        return
    item.width, item.height = header.width, header.height
    if header.orientation != 1:
        o = item.orientation = header.orientation
        add(Severity.WARNING, f"{rel_folder}/{item.name}",
            f"EXIF orientation {o}: viewers {_VIEWERS[o]}, but kohya trains it as stored "
            f"({_STORED[o]}, {header.width}x{header.height})",
            "convert it upright with the image tools (i on the Buckets screen, or "
            "`lorabake images DIR convert`)", "exif-rotated")


# EXIF orientation -> what viewers do to the stored pixels, and how those look untouched
_VIEWERS = {2: "mirror it", 3: "turn it 180°", 4: "flip it upside down",
            5: "mirror and turn it 90°", 6: "turn it 90° clockwise",
            7: "mirror and turn it 90°", 8: "turn it 90° counter-clockwise"}
_STORED = {2: "mirrored", 3: "upside down", 4: "upside down and mirrored",
           5: "sideways and mirrored", 6: "sideways", 7: "sideways and mirrored",
           8: "sideways"}


def _read_all(path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _check_caption(path: str, rel: str, add) -> CaptionState:
    try:
        data = _read_all(path)
    except OSError as exc:
        add(Severity.ERROR, rel, f"cannot read caption: {exc.strerror}",
            "check the file permissions", "caption-unreadable")
        return CaptionState.NOT_UTF8
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        add(Severity.ERROR, rel, f"caption is not valid UTF-8 (byte {exc.start})",
            "re-save it as UTF-8; lorabake will not rewrite it until then", "caption-not-utf8")
        return CaptionState.NOT_UTF8
    if text.startswith("\ufeff"):
        add(Severity.WARNING, rel, "caption starts with a UTF-8 byte-order mark",
            "kohya reads it as part of the first tag; re-save without BOM", "caption-bom")
        text = text[1:]
    # universal newlines, as kohya's text-mode open sees them (not str.splitlines' extras)
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if not lines[0].strip():
        add(Severity.ERROR, rel, "caption is empty" if not text.strip()
            else "caption's first line is empty (kohya reads only the first line)",
            "write tags into it or delete it", "empty-caption")
        return CaptionState.EMPTY
    if sum(1 for ln in lines if ln.strip()) > 1:
        add(Severity.WARNING, rel, "caption has several lines: kohya reads only the first",
            "join the lines with ', '", "caption-multiline")
    return CaptionState.OK
