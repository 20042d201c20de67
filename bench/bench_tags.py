"""How long do bulk tag edits on 10k captions take, journal and filesystem sync included?

    python bench/bench_tags.py [--images 10000] [--folders 8] [--runs 3] [--dir DIR] [--profile]
                               [--no-cli] [--no-pyc-cache]

Builds (or reuses) bench/out/tags-dataset-IMAGESxFOLDERS: the images of make_dataset.py, with
captions of exactly 20 tags written with spaces: the concept name first, `masterpiece` in
every caption, `blue eyes` in exactly half of them (a random half), 17 or 18 other tags.
Then, through the real code path (scan_dataset + CaptionStore.load, store.plan(op.fn,
store.records, ...), store.apply(plan): one journal entry, one filesystem sync; then
Journal(root).undo()), best and median of --runs:
  (1) op_replace('blue eyes', 'green eyes')           -> half the captions;
  (2) op_remove('masterpiece'), after (1)             -> every caption;
  (3) undo of (2), then undo of (1).
After the undos every caption must be byte-identical to the start (sha256 of all captions).
The baseline is a plain in-place rewrite of the same files (open, read, bytes.replace, open
'wb', write: no temp file, no fsync), which must produce the very bytes (1) and (2) produce.
Also once: `lorabake tags DIR replace 'blue eyes' 'green eyes'` and `lorabake undo DIR` as
subprocesses. --profile adds a cProfile of store.apply() for (1).
Targets: each operation (plan + apply, or an undo) <= 2 s; ours / plain <= 1.5x (median of runs).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import _common as c

TARGET_S = 2.0
TARGET_RATIO = 1.5
SEED = 20240602
TAGS_PER_CAPTION = 20
HALF_TAG, HALF_NEW = "blue eyes", "green eyes"  # (1): present in exactly half the captions
ALL_TAG = "masterpiece"  # (2): present in every caption, never first
STATE_DIR = ".lorabake"  # the journal lives here; the scan skips dot-folders


# ---------------------------------------------------------------- dataset


def caption_paths(root: Path, folders: int) -> list[tuple[str, str]]:
    """(caption path relative to root, concept name) in image-number order."""
    from make_dataset import folder_names

    out = []
    for name in folder_names(folders):
        with os.scandir(root / name) as it:
            for e in it:
                if e.name.startswith("img_") and e.name.endswith(".txt"):
                    out.append((int(e.name[4:-4]), f"{name}/{e.name}", name.split("_", 1)[1]))
    out.sort()
    return [(rel, concept) for _, rel, concept in out]


def tag_pool() -> list[str]:
    from make_dataset import TAGS

    special = (HALF_TAG, HALF_NEW, ALL_TAG)
    pool = [t.replace("_", " ") for t in TAGS]
    pool = [t for t in pool if not any(s in t for s in special)]
    # The plain baseline edits bytes: no other tag may contain what it looks for.
    assert not any(HALF_TAG in t or ALL_TAG in t for t in pool)
    return pool


def expected_captions(paths: list[tuple[str, str]]) -> dict[str, bytes]:
    """Deterministic captions: 20 tags, concept first, ALL_TAG anywhere after it, HALF_TAG in
    exactly half of them."""
    rng = random.Random(SEED)
    pool = tag_pool()
    half = set(rng.sample(range(len(paths)), len(paths) // 2))
    out = {}
    for n, (rel, concept) in enumerate(paths):
        extra = [ALL_TAG] + ([HALF_TAG] if n in half else [])
        body = rng.sample(pool, TAGS_PER_CAPTION - 1 - len(extra))
        for tag in extra:
            body.insert(rng.randrange(len(body) + 1), tag)
        out[rel] = (", ".join([concept, *body]) + "\n").encode("utf-8")
    return out


def captions_digest(root: Path, rels: list[str]) -> str:
    h = hashlib.sha256()
    for rel in rels:
        h.update(rel.encode())
        h.update(b"\0")
        try:
            with open(root / rel, "rb") as fh:
                h.update(fh.read())
        except FileNotFoundError:
            h.update(b"<missing>")
        h.update(b"\0")
    return h.hexdigest()


def digest_of(captions: dict[str, bytes]) -> str:
    h = hashlib.sha256()
    for rel, data in captions.items():
        h.update(rel.encode() + b"\0" + data + b"\0")
    return h.hexdigest()


def prepare(dir: Path, images: int, folders: int) -> tuple[Path, dict[str, bytes]]:
    """The dataset with our captions, no journal and no temp files left from an earlier run."""
    from make_dataset import dataset_matches, folder_names, make_dataset

    t = time.perf_counter()
    built = not dataset_matches(dir, images, folders)
    if built:
        make_dataset(dir, images, folders, overwrite=True)
    root = dir.resolve()
    shutil.rmtree(root / STATE_DIR, ignore_errors=True)
    leftovers = [e.path for name in folder_names(folders) for e in os.scandir(root / name)
                 if e.name.startswith(".") and e.name.endswith(".tmp")]
    for p in leftovers:
        os.unlink(p)
    captions = expected_captions(caption_paths(root, folders))
    if built or leftovers or captions_digest(root, list(captions)) != digest_of(captions):
        for rel, data in captions.items():
            (root / rel).write_bytes(data)
        os.sync()
        print(f"wrote {len(captions)} captions into {'a new' if built else 'the'} "
              f"{images}-image dataset in {root} ({time.perf_counter() - t:.1f} s)")
    else:
        print(f"reusing the {images}-image tags dataset in {root}")
    return root, captions


# ---------------------------------------------------------------- machine


def filesystem_line(path: Path) -> str:
    """`stat -f` type plus the /proc/mounts entry (stat -f says ext2/ext3 for ext4)."""
    try:
        statf = subprocess.run(["stat", "-f", "-c", "%T", str(path)], capture_output=True,
                               text=True, timeout=10).stdout.strip() or "?"
    except (OSError, subprocess.SubprocessError):
        statf = "?"
    mount = None
    real = os.path.realpath(path)
    try:
        with open("/proc/mounts", encoding="utf-8") as fh:
            for line in fh:
                dev, point, fstype, opts = line.split()[:4]
                point = point.replace("\\040", " ")
                inside = real == point or real.startswith(point.rstrip("/") + "/")
                if inside and (mount is None or len(point) >= len(mount[1])):
                    mount = (dev, point, fstype, opts)
    except OSError:
        pass
    where = (f"{mount[2]} on {mount[1]} ({mount[0]}, {mount[3]})" if mount
             else "not in /proc/mounts")
    return f"filesystem of {path}: {where}; `stat -f -c %T`: {statf}"


def nproc() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


# ---------------------------------------------------------------- the plain baseline


def plain_rewrite(paths: list[str], old: bytes, new: bytes) -> None:
    """What a throw-away script does: rewrite each file in place, no temp file, no fsync."""
    for p in paths:
        with open(p, "rb") as fh:
            data = fh.read()
        data = data.replace(old, new)
        with open(p, "wb") as fh:
            fh.write(data)


def restore(root: Path, captions: dict[str, bytes]) -> None:
    for rel, data in captions.items():
        with open(root / rel, "wb") as fh:
            fh.write(data)


# ---------------------------------------------------------------- timing


def timed(fn, *args):
    """(result, seconds). Dirty pages of earlier steps are flushed first, untimed, so that
    the filesystem sync inside a step pays for that step's writes only."""
    os.sync()
    t = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - t


class Runs:
    def __init__(self) -> None:
        self.times: dict[str, list[float]] = {}

    def add(self, key: str, seconds: float) -> None:
        self.times.setdefault(key, []).append(seconds)

    def bm(self, key: str) -> tuple[float, float]:
        return c.best_median(self.times[key])


def must(ok: bool, what: str) -> None:
    if not ok:
        raise SystemExit(f"FAIL: {what}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=c.DEFAULT_IMAGES)
    p.add_argument("--folders", type=int, default=c.DEFAULT_FOLDERS)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--dir", type=Path, default=None,
                   help="dataset folder (default bench/out/tags-dataset-IMAGESxFOLDERS); its "
                        "captions are rewritten and its .lorabake/ removed")
    p.add_argument("--profile", action="store_true", help="print a cProfile of apply for (1)")
    p.add_argument("--no-cli", action="store_true", help="skip the `lorabake tags` subprocess")
    p.add_argument("--no-pyc-cache", action="store_true",
                   help="run children with the environment as is (no bytecode cache of ours)")
    args = p.parse_args()

    print(c.machine_line())
    print(f"nproc = {nproc()}")
    c.OUT.mkdir(parents=True, exist_ok=True)
    print(filesystem_line(c.OUT))
    print(c.load_line())
    dir = args.dir or c.OUT / f"tags-dataset-{args.images}x{args.folders}"
    root, original = prepare(dir, args.images, args.folders)
    if args.dir is not None and not str(root).startswith(str(c.OUT.resolve())):
        print(filesystem_line(root))
    rels = list(original)
    n_all, n_half = len(rels), len(rels) // 2
    h0 = digest_of(original)
    # What (1) and (2) must produce, byte for byte, whichever way they are done.
    after1 = {r: d.replace(HALF_TAG.encode(), HALF_NEW.encode()) for r, d in original.items()}
    after12 = {r: d.replace(b", " + ALL_TAG.encode(), b"") for r, d in after1.items()}
    h1, h12 = digest_of(after1), digest_of(after12)
    c.ensure_importable()
    from lorabake_tui.core.base.journal import Journal
    from lorabake_tui.core.captions.store import CaptionStore
    from lorabake_tui.core.captions.tagops import op_remove, op_replace
    from lorabake_tui.core.dataset.scan import scan_dataset

    op1, op2 = op_replace(HALF_TAG, HALF_NEW), op_remove(ALL_TAG)

    def load():
        return CaptionStore.load(scan_dataset(root))

    def timed_load():
        """scan_dataset and CaptionStore.load, timed apart: (store, scan s, load s)."""
        ds, scan_s = timed(scan_dataset, root)
        t = time.perf_counter()
        return CaptionStore.load(ds), scan_s, time.perf_counter() - t

    def digest() -> str:
        return captions_digest(root, rels)

    CaptionStore.load(scan_dataset(root))  # untimed: warm page, dentry and import caches
    r = Runs()
    half_paths: list[str] = []
    t_all = time.perf_counter()
    for run in range(args.runs):
        first = run == 0  # the intermediate byte checks run once; the final one every time
        # ---- ours: plan + apply (journal, one sync), then undo both
        store, scan_s, load_s = timed_load()
        r.add("scan", scan_s)
        r.add("load", load_s)
        must(len(store.records) == n_all, f"store holds {len(store.records)} captions")
        plan1, s = timed(store.plan, op1.fn, store.records, op1.describe)
        r.add("plan1", s)
        must(plan1.files == n_half, f"(1) plans {plan1.files} files, not {n_half}")
        res1, s = timed(store.apply, plan1)
        r.add("apply1", s)
        must(res1.written == n_half and not res1.skipped, f"(1) wrote {res1.written}")
        must(not first or digest() == h1, "(1) did not write the expected bytes")
        half_paths = [str(root / ch.record.rel) for ch in plan1.changes]
        plan2, s = timed(store.plan, op2.fn, store.records, op2.describe)
        r.add("plan2", s)
        must(plan2.files == n_all, f"(2) plans {plan2.files} files, not {n_all}")
        res2, s = timed(store.apply, plan2)
        r.add("apply2", s)
        must(res2.written == n_all and not res2.skipped, f"(2) wrote {res2.written}")
        must(not first or digest() == h12, "(2) did not write the expected bytes")
        for key, entry_id in (("undo2", res2.entry.id), ("undo1", res1.entry.id)):
            undone, s = timed(lambda: Journal(root).undo())
            r.add(key, s)
            must(undone is not None and undone.id == entry_id and not undone.conflicts,
                 f"{key}: undid {undone and undone.id}, conflicts {undone and undone.conflicts}")
        must(digest() == h0, "after both undos the captions are not byte-identical")
        r.add("sum1", r.times["plan1"][-1] + r.times["apply1"][-1])
        r.add("sum2", r.times["plan2"][-1] + r.times["apply2"][-1])

        # ---- plain in-place rewrite of the same files
        all_paths = [str(root / rel) for rel in rels]
        _, s = timed(plain_rewrite, half_paths, HALF_TAG.encode(), HALF_NEW.encode())
        r.add("plain1", s)
        must(not first or digest() == h1, "plain (1) differs from ours")
        _, s = timed(plain_rewrite, all_paths, b", " + ALL_TAG.encode(), b"")
        r.add("plain2", s)
        must(not first or digest() == h12, "plain (2) differs from ours")
        restore(root, original)
        must(digest() == h0, "restoring after the plain rewrite")
    loop_s = time.perf_counter() - t_all
    os.sync()

    # ---- the CLI, once (after an untimed --dry-run that also fills the bytecode cache)
    cli_rows = []
    if not args.no_cli:
        env = c.child_env(pyc_cache=not args.no_pyc_cache)
        tags_cmd = [*c.lorabake_command(), "tags", str(root), "replace", HALF_TAG, HALF_NEW]
        dry_s, _ = c.time_subprocess([*tags_cmd, "--dry-run"], env=env)  # also fills .pyc
        os.sync()
        cli_s, out = c.time_subprocess(tags_cmd, env=env)
        must(f"changed {n_half} file(s)" in out and digest() == h1,
             f"`lorabake tags ... replace` output/bytes unexpected:\n{out[-500:]}")
        os.sync()
        undo_cmd = [*c.lorabake_command(), "undo", str(root)]
        undo_s, out = c.time_subprocess(undo_cmd, env=env)
        must(digest() == h0, "`lorabake undo` did not restore the captions")
        shown = " ".join(repr(a) if " " in a else a for a in tags_cmd)
        cli_rows = [
            (f"`lorabake tags DIR replace ...`, spawn to exit ({n_half:,} files)",
             c.ms(cli_s), "", "1", c.verdict(cli_s, TARGET_S)),
            ("    before it, untimed warm-up: the same with --dry-run", c.ms(dry_s), "", "1", ""),
            ("`lorabake undo DIR`, spawn to exit", c.ms(undo_s), "", "1",
             c.verdict(undo_s, TARGET_S)),
        ]

    n = str(args.runs)
    rows = [("measurement", "best", "median", "runs", f"target <= {c.ms(TARGET_S)}")]

    def row(label: str, key: str, target: float | None = None) -> None:
        b, m = r.bm(key)
        rows.append((label, c.ms(b), c.ms(m), n, c.verdict(m, target)))

    row(f"scan_dataset() ({n_all:,} images), for scale", "scan")
    row(f"CaptionStore.load() on that scan ({n_all:,} captions read and parsed)", "load")
    row(f"(1) replace '{HALF_TAG}' -> '{HALF_NEW}': plan", "plan1")
    row(f"    apply ({n_half:,} files, journal, one sync)", "apply1")
    row("    plan + apply", "sum1", TARGET_S)
    row(f"(2) remove '{ALL_TAG}': plan", "plan2")
    row(f"    apply ({n_all:,} files, journal, one sync)", "apply2")
    row("    plan + apply", "sum2", TARGET_S)
    row(f"(3) undo of (2), Journal(root).undo() ({n_all:,} files)", "undo2", TARGET_S)
    row(f"    undo of (1) ({n_half:,} files)", "undo1", TARGET_S)
    row(f"plain rewrite (1): {n_half:,} files, in place, no fsync", "plain1")
    row(f"plain rewrite (2): {n_all:,} files", "plain2")
    rows.extend(cli_rows)
    print()
    c.print_table(rows)

    print(f"\nours (plan + apply) / plain rewrite of the same files, "
          f"target <= {TARGET_RATIO:g}x:")
    for label, ours, plain in (("(1)", "sum1", "plain1"), ("(2)", "sum2", "plain2")):
        (ob, om), (pb, pm) = r.bm(ours), r.bm(plain)
        # each run's pair was measured seconds apart, so a per-run ratio shares the load
        per_run = [o / q for o, q in zip(r.times[ours], r.times[plain], strict=True)]
        ratio = statistics.median(per_run)
        verdict = "ok" if ratio <= TARGET_RATIO else "OVER"
        print(f"  {label} {ratio:.2f}x: {verdict} (median of the runs' ratios "
              f"{', '.join(f'{x:.2f}' for x in per_run)}; best/best {ob / pb:.2f}x = "
              f"{c.ms(ob)} / {c.ms(pb)}; median/median {om / pm:.2f}x)")
    print(f"checks: every run's captions were byte-identical to the start after the undos "
          f"(sha256 {h0[:12]}); the plain rewrite wrote the same bytes as (1) and (2).")
    print(f"{args.runs} runs in {loop_s:.1f} s. Each timed step starts after an untimed "
          "os.sync(), so a step's filesystem sync pays for its own writes only.")
    if not args.no_cli:
        print(f"command: {shown}")

    if args.profile:
        import cProfile
        import pstats

        store = load()
        plan = store.plan(op1.fn, store.records, op1.describe)
        os.sync()
        prof = cProfile.Profile()
        prof.runcall(store.apply, plan)
        Journal(root).undo()
        must(digest() == h0, "undo after the profiled apply")
        print(f"\ncProfile of store.apply() for (1), {n_half:,} files "
              "(profiling overhead inflates times):")
        pstats.Stats(prof).sort_stats("cumulative").print_stats(12)
    print(c.load_line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
