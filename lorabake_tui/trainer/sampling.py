"""Preview images during training, from the config's prompts.

A prompt may carry kohya's options after ` --`: `--n` negative prompt, `--w`/`--h` size,
`--s` steps, `--l` guidance scale, `--d` seed.
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
    from diffusers import EulerAncestralDiscreteScheduler, StableDiffusionPipeline

    was_training = (unet.training, text_encoder.training)
    unet.eval()
    text_encoder.eval()
    vae_device = model.vae.device
    model.vae.to(device)
    pipe = StableDiffusionPipeline(
        vae=model.vae, text_encoder=text_encoder, tokenizer=model.tokenizer, unet=unet,
        scheduler=EulerAncestralDiscreteScheduler.from_config(model.noise_scheduler.config),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    out_dir = RunFolder(run_dir).samples
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    seed = settings.general.seed
    clip_skip = settings.general.clip_skip
    try:
        for i, text in enumerate(settings.sampling.prompts):
            p = parse_prompt(text, settings.sampling.steps)
            g = torch.Generator(device=device).manual_seed(p["seed"] if p["seed"] is not None
                                                           else seed + i)
            image = pipe(p["prompt"], negative_prompt=p["negative"] or None,
                         width=p["width"], height=p["height"], num_inference_steps=p["steps"],
                         guidance_scale=p["scale"], generator=g,
                         clip_skip=clip_skip - 1 if clip_skip > 1 else None).images[0]
            path = out_dir / sample_name(output_name, epoch, i)
            image.save(path)
            paths.append(path)
    finally:
        unet.train(was_training[0])
        text_encoder.train(was_training[1])
        model.vae.to(vae_device)
    return paths
