"""Preview images during training, from the config's prompts.

A prompt may carry kohya's options after ` --`: `--n` negative prompt, `--w`/`--h` size,
`--s` steps, `--l` guidance scale, `--d` seed. The images come from the render engine
(render/engine.py) over the live training modules: the same samplers and seeds as the
evaluation grids, initial and ancestral noise drawn on the CPU from the prompt's seed.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from ..core.config.schema import TrainingSettings
from ..core.run.folder import RunFolder, sample_name

_OPT = re.compile(r"\s--([nwhsld])\s+")


def parse_prompt(text: str, default_steps: int) -> dict:
    parts = _OPT.split(" " + text)
    out = {"prompt": parts[0].strip(), "negative": "", "width": 512, "height": 512,
           "steps": default_steps, "scale": 7.0, "seed": None}
    for key, value in zip(parts[1::2], parts[2::2], strict=False):
        value = value.strip()
        try:
            if key == "n":
                out["negative"] = value
            elif key in ("w", "h"):
                out["width" if key == "w" else "height"] = int(value) // 8 * 8
            elif key == "s":
                out["steps"] = int(value)
            elif key == "l":
                out["scale"] = float(value)
            elif key == "d":
                out["seed"] = int(value)
        except ValueError:
            continue  # a malformed option is ignored, as kohya does
    return out


@torch.no_grad()
def sample_images(model, unet, text_encoder, settings: TrainingSettings, output_name: str,
                  run_dir: Path, epoch: int, device) -> list[Path]:
    from .render.engine import RenderEngine
    from .render.samplers import DEFAULT_SAMPLER

    was_training = (unet.training, text_encoder.training)
    unet.eval()
    text_encoder.eval()
    vae_device = model.vae.device
    model.vae.to(device)
    engine = RenderEngine.from_modules(model.vae, text_encoder, model.tokenizer, unet,
                                       model.noise_scheduler.config, device=device,
                                       clip_skip=settings.general.clip_skip)
    # a sampler setting, once the config has one; A1111's default until then
    sampler = getattr(settings.sampling, "sampler", None) or DEFAULT_SAMPLER
    out_dir = RunFolder(run_dir).samples
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    seed = settings.general.seed
    try:
        for i, text in enumerate(settings.sampling.prompts):
            p = parse_prompt(text, settings.sampling.steps)
            result = engine.render(p["prompt"], negative=p["negative"],
                                   seed=p["seed"] if p["seed"] is not None else seed + i,
                                   steps=p["steps"], cfg=p["scale"], width=p["width"],
                                   height=p["height"], sampler=sampler)
            path = out_dir / sample_name(output_name, epoch, i)
            result.image.save(path)
            paths.append(path)
    finally:
        unet.train(was_training[0])
        text_encoder.train(was_training[1])
        model.vae.to(vae_device)
    return paths
