"""`lorabake trigger WORD`: how CLIP reads a trigger word, what it already means, rarer
spellings, and whether the captions already use it."""

from __future__ import annotations

import argparse
import shlex

from .common import Parser, print_json

JSON_HELP = """\
--json prints one object:
  word, count (pieces), ids [int], rarity (mean id; higher is rarer), single_token (bool),
  pieces [{piece, token, id, word_final, common}],
  common [str] (pieces that are common words), known [str] (runs of letters CLIP holds as one
  token), hidden [str] (common words spelled inside), risk ("high" | "medium" | "low"),
  reasons [str], alternatives [{word, pieces [str], ids [int], rarity}],
  captions (null without --dir): {dir, captions, exact, partial,
                                  folders [{folder, captions, exact, partial}]}

A piece is a common word when it is a word-final token of 3+ letters with an id below 10000
(below 5000 for 3 letters): byte-pair merges are learnt most frequent first, so low ids are
frequent words. risk: high = a common word; medium = a word CLIP knows as one token, or a common
word spelled inside; low = none of these."""


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="lorabake trigger", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Check a trigger word: its CLIP tokens, pieces that are known words "
                    "(contamination), rarer alternatives, and its use in the captions.",
        epilog=JSON_HELP)
    p.add_argument("word", help="the trigger, as it will be written in the captions")
    p.add_argument("--dir", metavar="DIR", help="dataset root: count captions that use it")
    p.add_argument("--alternatives", type=int, default=5, metavar="N",
                   help="rarer spellings to suggest (default 5)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    return p


def main(argv: list[str]) -> int:
    from ..core.base.errors import LorabakeError
    from ..core.captions.trigger import trigger_report

    args = build_parser().parse_args(argv)
    if not args.word.strip():
        raise LorabakeError("the trigger word is empty")
    report = trigger_report(args.word, dir=args.dir, n_alternatives=max(0, args.alternatives))
    if args.json:
        print_json(report.to_json())
        return 0
    pieces = " | ".join(f"{p.text}{'*' if p.common else ''} ({p.id})" for p in report.pieces)
    print(f"{report.word}: {len(report.pieces)} token(s): {pieces}")
    print(f"rarity (mean id, higher is rarer): {report.rarity:.0f}")
    print(f"contamination risk: {report.risk}")
    for r in report.reasons:
        print(f"  - {r}")
    if report.risk != "low":
        print("  (fine when an outfit trigger should borrow those meanings: positive "
              "contamination; otherwise pick a rarer spelling)")
    if report.alternatives:
        print("rarer alternatives:")
        for a in report.alternatives:
            print(f"  {a.word:20}  {' | '.join(p.text for p in a.pieces)}  "
                  f"(rarity {a.rarity:.0f})")
    else:
        print("no close spelling avoids known words: make up a word (2-3 tokens)")
    if report.use is not None:
        u = report.use
        print(f"in the captions ({u.captions} read): {u.exact} have it as a tag, "
              f"{u.partial} inside a longer tag")
        for f in u.folders:
            print(f"  {f.folder}: {f.exact} tag, {f.partial} inside, of {f.captions}")
    print(f"see what the base model draws for it: lorabake probe {shlex.quote(report.word)} "
          "--config CONFIG -o DIR (or --model BASE)")
    return 0
