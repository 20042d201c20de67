"""Drawing a trigger probe: the empty prompt, the word, and the word with the dataset's
subject tag, each over the same seeds with the base model; then the diversity of each group
across seeds (core/eval/diversity.py says what the score means) and the CLIP token report of
the word, all in `probe.json`."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from ...core.base.atomic import atomic_write_bytes
from ...core.captions.trigger import trigger_report
from ...core.eval.diversity import diversity, reading
from ...core.eval.layout import PROBE_MANIFEST, probe_image, probe_prompts
from ...core.eval.manifest import write_json
from ...core.eval.request import ProbeRequest
from ...core.run import exit_codes
from ...core.run.event_writer import EventWriter
from ...core.run.events import EndStatus, EventType
from .grid_run import Outcome, infotext, png_bytes, render_settings


def run_probe(engine, req: ProbeRequest, events: EventWriter,
              stop: Callable[[], bool]) -> Outcome:
    out = Path(req.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    groups = probe_prompts(req)
    total = len(groups) * len(req.seeds)
    events.emit(EventType.START, total_steps=total, run_dir=str(out))
    engine.set_lora(None, 0.0)
    settings = render_settings(req.render)
    images, latents = [], {g: [] for g, _ in groups}
    started = time.monotonic()
    for group, prompt in groups:
        for seed in req.seeds:
            if stop():
                message = f"stopped after {len(images)} of {total} images"
                events.emit(EventType.END, status=EndStatus.STOPPED, message=message,
                            exit_code=exit_codes.STOPPED)
                return Outcome(exit_codes.STOPPED, message)
            result = engine.render(prompt, seed=seed, **settings)
            path = probe_image(out, group, seed)
            atomic_write_bytes(path, png_bytes(result.image, infotext(
                prompt, req.render, seed, base=req.base)))
            latents[group].append(result.latents)
            images.append({"group": group, "prompt": prompt, "seed": seed, "path": str(path)})
            each = (time.monotonic() - started) / len(images)
            events.emit(EventType.RENDER, done=len(images), total=total, path=str(path),
                        label=f"{group} · seed {seed}", s_per_image=round(each, 3),
                        eta_s=round(each * (total - len(images)), 1))
    scores = {g: round(diversity(v), 4) for g, v in latents.items()}
    ratio, verdict, sentence = reading(scores["word"], scores["baseline"])
    data = {"kind": "probe", "word": req.word, "subject": req.subject, "base": req.base,
            "images": images, "diversity": scores["word"],
            "baseline_diversity": scores["baseline"],
            "subject_diversity": scores.get("with-subject"), "ratio": round(ratio, 4),
            "reading": verdict, "explanation": sentence,
            "tokens": trigger_report(req.word, n_alternatives=3).to_json()}
    write_json(out / PROBE_MANIFEST, data)
    message = (f"{req.word!r}: diversity {scores['word']:.3f} (empty prompt "
               f"{scores['baseline']:.3f}, ratio {ratio:.2f}): {verdict}")
    events.emit(EventType.END, status=EndStatus.DONE, message=message, exit_code=exit_codes.DONE)
    return Outcome(exit_codes.DONE, message)
