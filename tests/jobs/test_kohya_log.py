"""Following a kohya sd-scripts run from its console log: tqdm's \\r redraws, epoch and save
lines, the start-up totals, the end; parsed whole or in pieces from byte offsets."""

from __future__ import annotations

import random

import pytest

from lorabake_tui.jobs.kohya_log import (
    KohyaLogParser,
    KohyaLogReader,
    kohya_outcome,
    latest_kohya_step,
    parse_kohya_log,
)

BAR = "steps: {pct:>3}%|{bar:<10}| {n}/12 [{el}<{rem}, {rate}{post}]"


def bar(n: int, el: str, rem: str, rate: str, loss: float | None = None) -> str:
    post = f", avr_loss={loss}" if loss is not None else ""
    return "\r" + BAR.format(pct=n * 100 // 12, bar="#" * (n * 10 // 12), n=n, el=el, rem=rem,
                             rate=rate, post=post)


def captured_log() -> str:
    """What `accelerate launch train_network.py ... > run.log 2>&1` leaves: rich-formatted
    log lines, the start-up block, tqdm (stderr, \\r before each redraw; kohya redraws once
    more after set_postfix), prints (stdout) cutting in."""
    out = [
        "2024-04-20 14:02:11 INFO     Loading dataset config from /w/dataset.toml"
        "                     train_network.py:172\n",
        "                    INFO     [Dataset 0]                             config_util.py:565\n",
        "2024-04-20 14:02:13 INFO     caching latents.                         train_util.py:917\n",
        "100%|##########| 12/12 [00:03<00:00,  3.52it/s]\n",
        "2024-04-20 14:02:20 INFO     prepare optimizer, data loader etc.  train_network.py:358\n",
        "running training / 学習開始\n",
        "  num train images * repeats / 学習画像の数×繰り返し回数: 12\n",
        "  num reg images / 正則化画像の数: 0\n",
        "  num batches per epoch / 1epochのバッチ数: 6\n",
        "  num epochs / epoch数: 2\n",
        "  batch size per device / バッチサイズ: 2\n",
        "  gradient accumulation steps / 勾配を合計するステップ数 = 1\n",
        "  total optimization steps / 学習ステップ数: 12\n",
        bar(0, "00:00", "?", "?it/s"),
        "\nepoch 1/2\n",
        "2024-04-20 14:02:22 INFO     epoch is incremented. current_epoch: 0, epoch: 1"
        "  train_util.py:668\n",
    ]
    losses = [0.142, 0.131, 0.127, 0.119, 0.121, 0.114, 0.113, 0.108, 0.110, 0.104, 0.102,
              0.101]
    for n in range(1, 13):
        el = f"00:{n * 2:02d}"
        rem = f"00:{(12 - n) * 2:02d}"
        rate = "2.31s/it" if n < 3 else "1.95it/s"
        out.append(bar(n, el, rem, rate, losses[n - 2] if n > 1 else None))  # before postfix
        out.append(bar(n, el, rem, rate, losses[n - 1]))  # set_postfix redraw
        if n == 6:
            out.append("\nsaving checkpoint: /w/out/mira-000001.safetensors\n")
            out.append("\nepoch 2/2\n")
    out.append("\nsaving checkpoint: /w/out/mira.safetensors\n")
    out.append("2024-04-20 14:02:47 INFO     model saved.                train_network.py:1085\n")
    out.append(bar(12, "00:24", "00:00", "1.95it/s", 0.101) + "\n")  # tqdm closing at exit
    return "".join(out)


def steps_of(events):
    return [e for e in events if e["type"] == "step"]


def test_a_captured_run_parses_into_trainer_events():
    events = KohyaLogParser().feed(captured_log().encode(), final=True)
    types = [e["type"] for e in events]
    assert types[0] == "start"
    assert events[0] == {"type": "start", "source": "kohya", "total_steps": 12,
                         "train_samples": 12, "reg_samples": 0, "batches_per_epoch": 6,
                         "epochs": 2, "batch_size": 2}
    # as the trainer does: an epoch event when an epoch is over, with the step it ended at
    assert [e for e in events if e["type"] == "epoch"] == [
        {"type": "epoch", "epoch": 1, "epochs": 2, "step": 6},
        {"type": "epoch", "epoch": 2, "epochs": 2, "step": 12}]
    assert types.count("save") == 2
    assert [e["path"] for e in events if e["type"] == "save"] == \
        ["/w/out/mira-000001.safetensors", "/w/out/mira.safetensors"]
    steps = steps_of(events)
    # each step once per distinct (step, loss): the redraw after set_postfix adds the loss
    assert [s["step"] for s in steps] == [1, 1, *[n for n in range(2, 13) for _ in (0, 1)]]
    last = {s["step"]: s for s in steps}
    assert last[12]["avg_loss"] == 0.101 and last[12]["total_steps"] == 12
    assert "avg_loss" not in steps[0]  # step 1 before its postfix: no loss printed yet
    assert last[1]["it_per_s"] == pytest.approx(1 / 2.31, rel=1e-3)
    assert last[5]["it_per_s"] == 1.95 and last[5]["eta_s"] == 14 and \
        last[5]["elapsed_s"] == 10
    assert last[6]["epoch"] == 1 and last[7]["epoch"] == 2
    assert events[-1] == {"type": "end", "status": "done", "message": "model saved"}
    assert "loss" not in last[3]  # kohya prints the running average only
    assert all(set(s) <= {"type", "step", "total_steps", "epoch", "avg_loss", "loss",
                          "it_per_s", "eta_s", "elapsed_s"} for s in steps)


@pytest.mark.parametrize("chunk", [1, 3, 7, 64, 4096])
def test_pieces_of_any_size_give_the_same_events(chunk):
    data = captured_log().encode()
    whole = KohyaLogParser().feed(data, final=True)
    parser = KohyaLogParser()
    events = []
    for i in range(0, len(data), chunk):
        events += parser.feed(data[i:i + chunk])
    events += parser.feed(b"", final=True)
    assert events == whole


def test_random_splits_from_byte_offsets(tmp_path):
    data = captured_log().encode()
    whole = KohyaLogParser().feed(data, final=True)
    rng = random.Random(7)
    cuts = sorted(rng.sample(range(1, len(data)), 40))
    log = tmp_path / "run.log"
    log.write_bytes(b"")
    reader = KohyaLogReader(log)
    events, prev = [], 0
    for cut in [*cuts, len(data)]:
        with log.open("ab") as fh:
            fh.write(data[prev:cut])
        prev = cut
        events += reader.read()
        assert reader.offset == cut  # never re-reads: the unfinished line lives in the parser
    events += reader.read(final=True)
    assert events == whole

    # the function form: offset in, offset and parser out
    first, offset, parser = parse_kohya_log(log, 0)
    assert offset == len(data)
    more, offset2, _ = parse_kohya_log(log, offset, parser, final=True)
    assert offset2 == offset and first + more == whole


def test_the_newest_redraw_is_reported_before_its_terminator_arrives():
    parser = KohyaLogParser()
    parser.feed(b"epoch 1/2\n")
    got = parser.feed(bar(4, "00:08", "00:16", "1.95it/s", 0.119).encode())
    assert [(e["step"], e["avg_loss"]) for e in got] == [(4, 0.119)]
    half = bar(5, "00:10", "00:14", "1.95it/s", 0.121).encode()
    assert parser.feed(half[:30]) == []  # cut mid-line: wait for the rest
    got = parser.feed(half[30:])
    assert [e["step"] for e in got] == [5]
    assert parser.feed(b"\n") == []  # its terminator: not reported twice


def test_nan_loss_warns_once_and_numbers_stay_finite():
    parser = KohyaLogParser()
    text = "".join(bar(n, "00:01", "00:10", "1.9it/s", float("nan")) for n in range(1, 4))
    events = parser.feed(text.encode() + b"\n")
    steps = steps_of(events)
    assert [s["step"] for s in steps] == [1, 2, 3]
    assert all("avg_loss" not in s for s in steps)
    warnings = [e for e in events if e["type"] == "warning"]
    assert len(warnings) == 1 and "bf16" in warnings[0]["message"]


def test_extra_postfix_keys_and_long_intervals():
    line = ("steps:  50%|#####     | 500/1000 [1:02:03<1:02:03,  7.45s/it, Keys Scaled=0, "
            "Average key norm=0.0123, avr_loss=0.0812]\n")
    (step,) = steps_of(KohyaLogParser().feed(line.encode()))
    assert step["elapsed_s"] == 3723 and step["eta_s"] == 3723
    assert step["avg_loss"] == 0.0812 and step["it_per_s"] == pytest.approx(1 / 7.45, rel=1e-3)


def test_a_traceback_becomes_an_error_and_ctrl_c_a_stop():
    text = (bar(3, "00:06", "00:18", "1.9it/s", 0.12) + "\nTraceback (most recent call last):\n"
            '  File "train_network.py", line 1000, in <module>\n'
            "    trainer.train(args)\n"
            "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 MiB\n")
    events = KohyaLogParser().feed(text.encode(), final=True)
    assert events[-1] == {"type": "error", "message": "torch.OutOfMemoryError: CUDA out of "
                          "memory. Tried to allocate 20.00 MiB"}
    text = bar(3, "00:06", "00:18", "1.9it/s", 0.12) + "\nTraceback (most recent call " \
        "last):\n  File \"x.py\", line 3\nKeyboardInterrupt\n"
    assert KohyaLogParser().feed(text.encode())[-1]["status"] == "stopped"


def test_outcome_and_latest_step_read_only_the_end(tmp_path):
    log = tmp_path / "run.log"
    log.write_text(captured_log())
    assert kohya_outcome(log) == "done"
    step = latest_kohya_step(log, tail_bytes=300)
    assert step["step"] == 12 and step["avg_loss"] == 0.101
    running = tmp_path / "running.log"
    running.write_text(captured_log().split("\nepoch 2/2")[0])
    assert kohya_outcome(running) is None
    assert latest_kohya_step(running)["step"] == 6
    handled = tmp_path / "handled.log"  # a traceback at start-up that kohya survived
    handled.write_text("Traceback (most recent call last):\nModuleNotFoundError: No module "
                       "named 'xformers'\n" + captured_log().split("\nepoch 2/2")[0])
    assert kohya_outcome(handled) is None
    assert kohya_outcome(tmp_path / "missing.log") is None
