"""`lorabake tags DIR ACTION ...`: every bulk caption operation, headless.

Each changing action previews what it would do (`--dry-run` stops there), then applies it as
one journal entry (`lorabake undo DIR` takes it back).
"""

from __future__ import annotations

import argparse
import sys

from ..core.base.errors import LorabakeError
from .common import OK, Parser, partial_or, print_json

CHANGING = ("replace", "remove", "add", "prune", "consolidate", "synonyms", "implications",
            "dedupe", "sort", "normalize")
ACTIONS = ("list", "stats", "tokens", *CHANGING)
SAMPLES = 5

TOKENS_HELP = """\
Counts each caption's CLIP tokens as the trainer reads it (tags joined with ", "; BOS/EOS not
counted) against the max token length, from <DIR>/.lorabake/training.toml when it exists
(general.max_token_length, data.shuffle_caption, data.keep_tokens,
data.keep_tokens_separator), else 225 with shuffling and keep_tokens 1. kohya reads 150 and
225 as chunks of 75: a tag across a chunk boundary is read as two halves.

--json prints one object:
  max_token_length, over (the --over threshold), shuffle, keep_tokens, keep_tokens_separator,
  summary {captions, over, max, mean, kept_over, split},
  captions [{path, image, folder, tokens, max_token_length, cut_tokens, cut_tags [str],
             kept_tokens, kept_over, cut_tags_mean, cut_tags_worst,
             split_tags [{tag, boundary}]}]   (captions over --over, or whose kept part
                                                alone overflows; most tokens first)
  split [{path, tags [{tag, boundary}]}]      (every caption with a tag across a boundary)
cut_tags: not fully read in the written order. With shuffling, which flexible tags are cut
changes every step: cut_tags_worst is the count when the longest come first, cut_tags_mean
an estimate of the average over random orders."""


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="lorabake tags",
        description="Bulk caption operations. Changing actions print a preview and apply it "
                    "as one undoable step (`lorabake undo DIR`); --dry-run only previews.")
    p.add_argument("dir", help="dataset training root")
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    def action(name: str, help_: str) -> argparse.ArgumentParser:
        a = sub.add_parser(name, help=help_, description=help_)
        a.add_argument("--filter", metavar="EXPR", help="only images matching EXPR, e.g. "
                       "'long hair AND NOT folder:misc' (AND OR NOT ( ) * folder: tags>N "
                       "tokens>N empty)")
        a.add_argument("--concept", metavar="FOLDER", help="only this concept folder")
        a.add_argument("--caption-ext", default=None, metavar="EXT",
                       help="caption extension (default: the project config's, else .txt)")
        a.add_argument("--json", action="store_true", help="print the result as JSON")
        if name in CHANGING:
            a.add_argument("--dry-run", action="store_true", help="preview only")
            a.add_argument("--write-style", choices=("keep", "spaces", "underscores"),
                           help="how written tags look (default: the project's, else keep)")
        return a

    action("list", "tag frequencies, most frequent first")
    action("stats", "frequencies, empty and missing captions, outliers, tags per concept")
    a = action("tokens", "captions over the token limit: tokens, tags cut, chunk boundaries")
    a.formatter_class = argparse.RawDescriptionHelpFormatter
    a.epilog = TOKENS_HELP
    a.add_argument("--over", type=int, metavar="N",
                   help="list captions with more than N tokens (default: the max length)")
    a.add_argument("--max", type=int, choices=(75, 150, 225), dest="max_length",
                   help="max token length (default: the project config's, else 225)")
    a.add_argument("--keep-tokens", type=int, metavar="N",
                   help="tags kept in front when shuffling (default: the project config's)")
    a.add_argument("--shuffle", action=argparse.BooleanOptionalAction, default=None,
                   help="whether tags are shuffled (default: the project config's)")
    a = action("replace", "replace a tag (exact), a substring in tags, or a regex over tags")
    a.add_argument("old")
    a.add_argument("new", help="'' removes")
    g = a.add_mutually_exclusive_group()
    g.add_argument("--substring", action="store_true")
    g.add_argument("--regex", action="store_true")
    a = action("remove", "remove tags (exact or glob, e.g. '*_background')")
    a.add_argument("tags", nargs="+", metavar="TAG")
    a = action("add", "add tags (first by default: the trigger); present ones are moved")
    a.add_argument("tags", nargs="+", metavar="TAG")
    a.add_argument("--position", default="first", help="first, last or an index (default first)")
    a.add_argument("--create-missing", action="store_true",
                   help="also create captions for images that have none")
    a = action("prune", "remove a set of tags: a preset (e.g. intrinsic) or the given tags")
    a.add_argument("tags", nargs="*", metavar="TAG")
    a.add_argument("--preset", help="preset name (see --list-presets)")
    a.add_argument("--list-presets", action="store_true")
    a = action("consolidate", "merge a group of tags into one")
    a.add_argument("tags", nargs="+", metavar="TAG")
    a.add_argument("--into", required=True, metavar="TAG")
    a = action("synonyms", "replace synonyms by their canonical tag, from a file "
                           "('canonical: syn1, syn2' per line)")
    a.add_argument("file", nargs="?", help="default: the bundled list")
    a = action("implications", "drop a general tag when a more specific one is present "
                               "('specific -> general' per line)")
    a.add_argument("file", nargs="?", help="default: the bundled rules")
    action("dedupe", "drop repeated tags (underscores and spaces count as the same)")
    a = action("sort", "sort tags, keeping the first N in place")
    a.add_argument("--by", choices=("name", "count"), default="name")
    a.add_argument("--keep", type=int, default=1, help="tags kept in front (default 1: trigger)")
    a = action("normalize", "write every tag with spaces or with underscores")
    g = a.add_mutually_exclusive_group(required=True)
    g.add_argument("--spaces", action="store_true")
    g.add_argument("--underscores", action="store_true")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.action == "prune" and args.list_presets:
        from ..core.captions.tagrules import list_presets

        print("\n".join(list_presets()))
        return 0
    store, records = load_scope(args)
    if args.action == "list":
        freqs = store.frequencies(records)
        if args.json:
            print_json({"images": len(records),
                         "tags": [{"tag": t, "count": n} for t, n in freqs]})
        else:
            print(f"{len(records)} images, {len(freqs)} distinct tags")
            for tag, n in freqs:
                print(f"{n:7d}  {n / max(len(records), 1):6.1%}  {tag}")
        return 0
    if args.action == "stats":
        from ..core.captions.tagstats import tag_stats

        stats = tag_stats(store, records)
        if args.json:
            print_json(stats.to_json())
        else:
            _print_stats(stats)
        return 0
    if args.action == "tokens":
        return run_tokens(args, store, records)
    return run_change(args, store, records)


def load_scope(args):
    from ..core.captions.store import CaptionStore
    from ..core.captions.tagfilter import parse_filter
    from ..core.project.prefs import ProjectSettings
    from .dataset import project_of

    flt = parse_filter(args.filter) if args.filter else None  # FilterError is a LorabakeError
    project = project_of(args)
    ds = project.scan()
    style = getattr(args, "write_style", None) or ProjectSettings.load(ds.root).write_style
    store = CaptionStore.load(ds, style=style)
    if flt is not None and flt.uses_tokens:
        from ..core.captions.tokens import matching_records

        rules = token_settings(args, project.token_settings()).rules
        return store, matching_records(store, flt, args.concept, rules)
    return store, store.matching(flt, args.concept)


def token_settings(args, base):
    """The project's token settings with the command line's overrides."""
    import dataclasses

    rules = base.rules
    if getattr(args, "keep_tokens", None) is not None:
        if args.keep_tokens < 0:
            raise LorabakeError("--keep-tokens must be 0 or more")
        rules = dataclasses.replace(rules, keep_tokens=args.keep_tokens)
    if getattr(args, "shuffle", None) is not None:
        rules = dataclasses.replace(rules, shuffle=args.shuffle)
    max_length = getattr(args, "max_length", None) or base.max_length
    return dataclasses.replace(base, max_length=max_length, rules=rules)


def run_tokens(args, store, records) -> int:
    from ..core.captions.tokens import token_report
    from ..core.project.project import Project

    settings = token_settings(args, Project(store.root).token_settings())
    report = token_report(records, settings)
    limit = settings.max_length if args.over is None else args.over
    listed = sorted((e for e in report.entries if e.tokens.total > limit or e.tokens.kept_over),
                    key=lambda e: (-e.tokens.total, e.rel))
    split = [e for e in report.entries if e.tokens.split_tags]
    summary = report.summary(limit)
    rules = settings.rules
    if args.json:
        print_json({
            "max_token_length": settings.max_length, "over": limit, "shuffle": rules.shuffle,
            "keep_tokens": rules.keep_tokens,
            "keep_tokens_separator": rules.keep_tokens_separator,
            "summary": summary, "captions": [e.to_json() for e in listed],
            "split": [{"path": e.rel, "tags": [{"tag": t, "boundary": b}
                                               for t, b in e.tokens.split_tags]}
                      for e in split],
        })
        return 0
    keep = (f"keep {rules.keep_tokens_separator!r}" if rules.keep_tokens_separator
            else f"keep_tokens {rules.keep_tokens}")
    print(f"max token length {settings.max_length} "
          f"({'shuffled, ' + keep if rules.shuffle else 'not shuffled'})"
          + (f"; listing captions over {limit}" if limit != settings.max_length else ""))
    if not listed:
        print(f"no caption over {limit} tokens")
    for e in listed:
        t = e.tokens
        line = f"{t.total:5d}  {e.rel}"
        if t.over:
            line += f"  cut {t.over} token(s): {', '.join(t.cut_tags)}"
        print(line)
        if t.kept_over:
            print(f"       the kept part alone is {t.kept_total} tokens: even it is cut")
        elif t.shuffled and t.over:
            print(f"       shuffled: about {t.cut_mean:.1f} tag(s) cut per step, "
                  f"{t.cut_worst} at worst")
    if split:
        print(f"\n{len(split)} caption(s) with a tag across a 75-token chunk boundary:")
        for e in split[:SAMPLES]:
            tags = ", ".join(f"{t} (at {b})" for t, b in e.tokens.split_tags)
            print(f"  {e.rel}: {tags}")
        if len(split) > SAMPLES:
            print(f"  ... and {len(split) - SAMPLES} more")
    print(f"\n{summary['captions']} caption(s): {summary['over']} over {limit} tokens, "
          f"max {summary['max']}, mean {summary['mean']:.1f}"
          + (f", {summary['kept_over']} whose kept part alone overflows"
             if summary["kept_over"] else ""))
    return 0


def make_op(args, store):
    """The CLI's arguments as the text values the shared operation table takes."""
    from ..core.captions.tagop_specs import build_op

    a = args.action
    joined = ", ".join(getattr(args, "tags", None) or [])
    values = {
        "replace": lambda: {"old": args.old, "new": args.new, "mode": "regex" if args.regex
                            else "substring" if args.substring else "exact"},
        "remove": lambda: {"tags": joined},
        "add": lambda: {"tags": joined, "position": args.position},
        "prune": lambda: {"preset": args.preset or "", "tags": joined},
        "consolidate": lambda: {"tags": joined, "into": args.into},
        "synonyms": lambda: {"file": args.file or ""},
        "implications": lambda: {"file": args.file or ""},
        "dedupe": dict,
        "sort": lambda: {"by": args.by, "keep": str(args.keep)},
        "normalize": lambda: {"style": "spaces" if args.spaces else "underscores"},
    }[a]()
    return build_op(a, values, store.counts)


def run_change(args, store, records) -> int:
    op = make_op(args, store)
    plan = store.plan(op.fn, records, op.describe,
                      create_missing=getattr(args, "create_missing", False),
                      style_new=op.name != "normalize")
    result = None
    if plan.changes and not args.dry_run:
        result = store.apply(plan, op="tags")
    if args.json:
        print_json({
            "operation": op.describe, "scope": len(records), "files": plan.files,
            "changes": [{"path": c.record.rel, "before": c.old_tags, "after": c.new_tags}
                        for c in plan.changes],
            "not_editable": plan.not_editable, "applied": result is not None,
            "skipped": result.skipped if result else [],
        })
        return partial_or(OK, result.skipped if result else None)
    print(f"{op.describe}: {plan.files} of {len(records)} caption(s) change")
    for c in plan.changes[:SAMPLES]:
        removed = [t for t in c.old_tags if t not in c.new_tags]
        added = [t for t in c.new_tags if t not in c.old_tags]
        print(f"  {c.record.rel}")
        print(f"    - {', '.join(c.old_tags)}")
        print(f"    + {', '.join(c.new_tags)}")
        notes = ([f"removed {', '.join(removed)}"] if removed else []) + (
            [f"added {', '.join(added)}"] if added else [])
        if notes:
            print(f"      ({'; '.join(notes)})")
    if plan.files > SAMPLES:
        print(f"  ... and {plan.files - SAMPLES} more")
    for line in plan.not_editable:
        print(f"  left alone: {line}", file=sys.stderr)
    if result is not None:
        for line in result.skipped:
            print(f"  skipped: {line}", file=sys.stderr)
        print(f"changed {result.written} file(s); undo with `lorabake undo {args.dir}`")
    elif plan.files and args.dry_run:
        print("dry run: nothing written")
    return partial_or(OK, result.skipped if result else None)


def _print_stats(stats) -> None:
    print(f"{stats.images} images, {stats.captioned} with tags, "
          f"{len(stats.frequencies)} distinct tags")
    print("\nmost frequent:")
    for tag, n in stats.frequencies[:20]:
        print(f"  {n:6d}  {n / max(stats.images, 1):6.1%}  {tag}")
    if stats.missing:
        print(f"\n{len(stats.missing)} image(s) without a caption")
    if stats.empty:
        print(f"{len(stats.empty)} empty caption(s): " + ", ".join(stats.empty[:5]))
    if stats.outliers:
        print("\noutliers (failed tagger output?):")
        for o in stats.outliers:
            print(f"  {o.rel}: {o.reason}")
    if stats.singletons:
        print(f"\n{len(stats.singletons)} tag(s) on a single image: "
              + ", ".join(stats.singletons[:15]) + (" ..." if len(stats.singletons) > 15 else ""))
    print("\ntags that set each concept apart (share here vs elsewhere):")
    for c in stats.concepts:
        tags = ", ".join(f"{t} {a:.0%}/{b:.0%}" for t, a, b in c.distinctive) or "(none)"
        print(f"  {c.folder} ({c.images}): {tags}")


