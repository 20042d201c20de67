"""Token counts for 10,000 random captions, as the Tags screen shows them (target <= 1 s).

    .venv/bin/python bench/bench_tokens.py [--captions N] [--runs N]

Each caption gets the CLIP token count, the tags cut at 75 tokens and the tags split across
the 75-token boundary, with kohya's shuffle and keep_tokens=1 applied the way the trainer
will. The vocabulary mixes real CLIP words with made-up tags, so the tokenizer's word cache
does not make every tag free.
"""

from __future__ import annotations

import argparse
import random
import time

from _common import (
    best_median,
    ensure_importable,
    load_line,
    machine_line,
    ms,
    print_table,
    verdict,
)

TARGET_S = 1.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--captions", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    ensure_importable()
    from lorabake_tui.core.captions.clip_tokenizer import clip_tokenizer
    from lorabake_tui.core.captions.processing import CaptionRules
    from lorabake_tui.core.captions.tokens import TokenCounter

    rng = random.Random(0)
    words = [t.removesuffix("</w>") for t in clip_tokenizer().decoder[1000:3000]
             if t.endswith("</w>") and t[:-4].isalpha()]
    vocab = words + [f"tag{i}_{rng.choice(words)}" for i in range(1500)]
    captions = [[rng.choice(vocab) for _ in range(rng.randint(5, 35))]
                for _ in range(args.captions)]
    rules = CaptionRules(shuffle=True, keep_tokens=1)
    times = []
    for _ in range(args.runs):
        counter = TokenCounter()  # a fresh cache each run: what opening the Tags screen costs
        t = time.perf_counter()
        over = sum(counter.analyse(tags, 75, rules).is_over for tags in captions)
        times.append(time.perf_counter() - t)
    best, median = best_median(times)
    print(machine_line())
    print(load_line())
    print_table([("measurement", "best", "median", "target"),
                 (f"{args.captions:,} captions analysed ({over:,} over 75)", ms(best), ms(median),
                  verdict(median, TARGET_S))])


if __name__ == "__main__":
    main()
