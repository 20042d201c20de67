"""Scan a kohya-style dataset: concept folders, images, captions and everything wrong with them.

A scan reads directory listings, image headers and caption bytes; it never decodes pixels and
never writes. Problems are collected, not raised, so one bad file never hides the others.

Only regular files are read. A FIFO, socket or device named like an image or caption is never
opened (opening a FIFO blocks until someone writes to it): it is a problem and left out. Links
are followed as kohya follows them (its is_dir and glob do), each with one stat that fails on a
loop; the scan reads the root and the concept folders and never goes deeper, so a link to a
parent folder cannot make it recurse. A dangling or looping link is a problem and left out. A
concept folder that is a link trains as kohya trains it, with the link's own repeats, and is
reported: folder renames (balance, set repeats) refuse to touch it.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from ..base.errors import LorabakeError
from ..images.imageinfo import ImageReadError, read_image_header
from ..images.limits import PIXEL_LIMIT_HINT, over_pixel_limit, pixel_limit_message
from ..images.media import DEFAULT_CAPTION_EXT, UNREADABLE_BY_KOHYA_EXTS, image_ext
from .folders import parse_folder_name
from .problems import Problem, Severity
from .steps import concept_samples


class CaptionState(StrEnum):
    OK = "ok"
    MISSING = "missing"
    EMPTY = "empty"
    NOT_UTF8 = "not-utf8"


class LinkPlace(StrEnum):
    """Where a file that is a symbolic link really is, seen from the dataset root."""

    INSIDE = "inside"
    OUTSIDE = "outside"


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
    caption_link: LinkPlace | None = None  # the caption is a link: to a file inside the root?

    @property
    def over_pixel_limit(self) -> bool:
        """Too many pixels for Pillow to open, so kohya (and the trainer) would stop on it."""
        return self.width is not None and self.height is not None and \
            over_pixel_limit(self.width, self.height)

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
    link: Path | None = None  # the folder is a symbolic link to this (real) folder

    @property
    def is_link(self) -> bool:
        return self.link is not None

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
                    "link": str(c.link) if c.link is not None else None,
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
    links: dict[Path, Path] = {}  # concept folder that is a link -> the real folder
    real: dict[Path, str] = {}  # real path of a concept folder that is no link -> its name
    for base, is_reg in ((root, False), (reg, True)):
        if base is None:
            continue
        listing = _list_folder(base)
        if listing.error is not None:
            raise LorabakeError(f"cannot list {base}: {listing.error}",
                                "check the folder's permissions")
        for name, what in sorted(listing.odd.items()):
            problems.append(_odd_problem(_rel(base / name, root), what, None, is_image=False))
        sub_dirs = sorted(listing.subdirs)
        loose = sorted(n for n in listing.names if image_ext(n))
        if loose:
            problems.append(_root_images_problem(base, root, loose, is_reg))
        if not sub_dirs and not loose:
            problems.append(Problem(
                Severity.WARNING, _rel(base, root), "no concept folders here",
                "create folders named N_name (e.g. 10_mychar) holding the images",
                "no-concepts"))
        for name in sub_dirs:
            folder = base / name
            if name in listing.links:
                links[folder] = Path(listing.links[name])
            else:
                real[folder] = name
            jobs.append((folder, root, is_reg))

    listings = [(_list_folder(folder), folder, base, is_reg) for folder, base, is_reg in jobs]
    total = sum(sum(1 for n in lst.names if image_ext(n)) for lst, *_ in listings)
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
    for listing, folder, base, is_reg in listings:
        concept, found = _scan_concept(folder, base, is_reg, caption_ext, listing, tick)
        if folder in links:
            concept.link = links[folder]
            found.insert(0, _link_problem(concept, base, real))
            concept.problems += 1
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


@dataclass(slots=True)
class _Listing:
    """One folder's entries by what they are, dotfiles skipped (.lorabake and friends;
    kohya's glob skips them too)."""

    names: set[str] = field(default_factory=set)  # regular files, or links leading to one
    subdirs: list[str] = field(default_factory=list)  # folders, or links leading to one
    odd: dict[str, str] = field(default_factory=dict)  # name -> what it is instead
    links: dict[str, str] = field(default_factory=dict)  # name of a link -> its real path
    error: str | None = None  # the folder itself could not be listed


_SPECIAL = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
            (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def _list_folder(folder: Path) -> _Listing:
    out = _Listing()
    try:
        with os.scandir(folder) as it:
            for entry in it:
                if not entry.name.startswith("."):
                    _sort_entry(entry, out)
    except OSError as exc:
        out.error = exc.strerror or str(exc)
    return out


def _sort_entry(entry: os.DirEntry, out: _Listing) -> None:
    """File, folder or something never to open. A plain file or folder costs no system
    call (the listing's file type says so); a link costs one stat, a special file one lstat.
    A link is followed once by stat, which fails on a loop (ELOOP) instead of recursing."""
    name = entry.name
    try:
        if entry.is_symlink():
            try:
                mode = os.stat(entry.path).st_mode
            except FileNotFoundError:
                out.odd[name] = f"a link to {_readlink(entry.path)}, which does not exist"
                return
            except OSError as exc:
                out.odd[name] = ("a link loop" if exc.errno == errno.ELOOP else
                                 f"a link that cannot be followed ({exc.strerror})") + \
                    f" ({name} -> {_readlink(entry.path)})"
                return
            out.links[name] = os.path.realpath(entry.path)
        elif entry.is_file(follow_symlinks=False):
            out.names.add(name)
            return
        elif entry.is_dir(follow_symlinks=False):
            out.subdirs.append(name)
            return
        else:
            mode = entry.stat(follow_symlinks=False).st_mode
    except OSError as exc:
        out.odd[name] = f"cannot be read ({exc.strerror})"
        return
    if stat.S_ISREG(mode):
        out.names.add(name)
    elif stat.S_ISDIR(mode):
        out.subdirs.append(name)
    else:
        what = next((w for test, w in _SPECIAL if test(mode)), "a special file")
        out.odd[name] = f"not a regular file ({what})"
        out.links.pop(name, None)


def _readlink(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return "?"


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


def _odd_problem(rel: str, what: str, concept: str | None, *, is_image: bool) -> Problem:
    """A name lorabake never opens: a special file, or a link that leads nowhere."""
    if what.startswith("not a regular file"):
        code, hint = "not-regular", "remove or rename it"
    elif what.startswith("a link"):
        code = "link-loop" if what.startswith("a link loop") else "dangling-link"
        hint = "remove the link, or point it at a real file"
    else:
        code, hint = "unreadable-entry", "check its permissions"
    # kohya globs an image name whatever it is, then hangs (FIFO) or crashes on it; any
    # other name it never opens
    severity = Severity.ERROR if is_image else Severity.WARNING
    return Problem(severity, rel, f"{what}: skipped", hint, code, concept=concept)


def _link_problem(concept: Concept, root: Path, real: dict[Path, str]) -> Problem:
    """A concept folder that is a link: kohya follows it (is_dir and glob do), so its images
    train with the link's repeats; lorabake's renames would break it or its target."""
    target = concept.link
    twin = real.get(target) if target is not None else None
    if twin is not None:
        message = (f"{concept.folder} is a link to {twin}: kohya would train those images "
                   "twice; lorabake will not rename it")
        hint = "remove the link unless you mean to train them twice"
    else:
        message = f"{concept.folder} is a link to {target}: lorabake will not rename it"
        hint = "to change its repeats, rename the link yourself or make it a real folder"
    return Problem(Severity.WARNING, _rel(concept.path, root), message, hint, "linked-folder",
                   concept=concept.folder)


def _scan_concept(folder: Path, root: Path, is_reg: bool, caption_ext: str,
                  listing: _Listing, tick: Callable[[], None]
                  ) -> tuple[Concept, list[Problem]]:
    parsed = parse_folder_name(folder.name)
    concept = Concept(folder.name, folder, parsed.name, parsed.repeats, is_reg)
    rel_folder = _rel(folder, root)
    problems: list[Problem] = []
    names, subdirs = listing.names, listing.subdirs

    def add(sev: Severity, path: str, msg: str, hint: str, code: str) -> None:
        problems.append(Problem(sev, path, msg, hint, code, concept=folder.name))

    if listing.error is not None:
        add(Severity.ERROR, rel_folder, f"cannot list the folder ({listing.error})",
            "check its permissions (kohya stops on it too)", "unreadable-folder")
    for name, what in sorted(listing.odd.items()):
        problems.append(_odd_problem(f"{rel_folder}/{name}", what, folder.name,
                                     is_image=image_ext(name) is not None))
    root_prefix = str(root) + os.sep
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
            target = listing.links.get(cap_name)
            if target is not None:
                item.caption_link = _caption_link(target, root_prefix, f"{rel_folder}/"
                                                  f"{cap_name}", add)
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
    if over_pixel_limit(header.width, header.height):
        # kept readable, with its size: the image tools and the plan decide what to do
        add(Severity.ERROR, f"{rel_folder}/{item.name}",
            pixel_limit_message(header.width, header.height), PIXEL_LIMIT_HINT,
            "too-many-pixels")
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


# O_NONBLOCK: a file swapped for a FIFO after the listing must not hang the scan in open()
_CAPTION_FLAGS = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NONBLOCK", 0)


def _read_all(path: str) -> bytes:
    fd = os.open(path, _CAPTION_FLAGS)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _caption_link(target: str, root_prefix: str, rel: str, add) -> LinkPlace:
    """A caption that is a link: edits can follow one into the dataset, never out of it."""
    if target.startswith(root_prefix):
        return LinkPlace.INSIDE
    add(Severity.WARNING, rel, f"caption is a link to {target}, outside the dataset",
        "lorabake does not edit files outside the dataset: copy it here to edit its tags",
        "caption-link-outside")
    return LinkPlace.OUTSIDE


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
