"""A1111's sampler names and the diffusers schedulers that stand for them.

Every scheduler is built from the base model's own scheduler config (betas, prediction type),
with the settings the name implies. The timestep spacing follows A1111: its k-diffusion
samplers (Euler, Heun, DPM...) walk the training timesteps evenly from the last one to 0,
diffusers' "linspace"; DDIM and PLMS take every (1000 // steps)-th timestep plus one,
diffusers' "leading" with steps_offset 1, and end at the first timestep's alpha, not at 1.

Not offered: LMS and "DPM++ SDE" (diffusers needs scipy and torchsde for them, which the
trainer does not install), "DPM++ 2S a" and the adaptive samplers (no diffusers counterpart).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping

from ...core.eval.samplers import DEFAULT_SAMPLER, SAMPLER_NAMES, canonical_name

_K = {"timestep_spacing": "linspace"}  # k-diffusion's default schedule
_KARRAS = {**_K, "use_karras_sigmas": True}
_DPMPP = {"algorithm_type": "dpmsolver++", "solver_order": 2}
_SDE = {"algorithm_type": "sde-dpmsolver++", "solver_order": 2}
_LEADING = {"timestep_spacing": "leading", "steps_offset": 1}

# A1111 name -> (diffusers scheduler class, settings over the base config)
SAMPLERS: dict[str, tuple[str, dict]] = {
    "Euler a": ("EulerAncestralDiscreteScheduler", dict(_K)),
    "Euler": ("EulerDiscreteScheduler", dict(_K)),
    "Heun": ("HeunDiscreteScheduler", dict(_K)),
    "DPM2": ("KDPM2DiscreteScheduler", dict(_K)),
    "DPM2 a": ("KDPM2AncestralDiscreteScheduler", dict(_K)),
    "DPM++ 2M": ("DPMSolverMultistepScheduler", {**_K, **_DPMPP}),
    "DPM++ 2M Karras": ("DPMSolverMultistepScheduler", {**_KARRAS, **_DPMPP}),
    "DPM++ 2M SDE": ("DPMSolverMultistepScheduler", {**_K, **_SDE}),
    "DPM++ 2M SDE Karras": ("DPMSolverMultistepScheduler", {**_KARRAS, **_SDE}),
    "DDIM": ("DDIMScheduler", {**_LEADING, "set_alpha_to_one": False}),
    "PLMS": ("PNDMScheduler", {**_LEADING, "skip_prk_steps": True, "set_alpha_to_one": False}),
    "UniPC": ("UniPCMultistepScheduler", dict(_K)),
}
assert tuple(SAMPLERS) == SAMPLER_NAMES, "core/eval/samplers.py lists the same names"


def sampler_names() -> list[str]:
    return list(SAMPLERS)


def make_scheduler(name: str, base_config: Mapping):
    """A fresh diffusers scheduler for the A1111 sampler `name`, built on the base model's
    scheduler config (a scheduler's `.config` or a plain dict)."""
    import diffusers

    cls_name, settings = SAMPLERS[canonical_name(name)]
    cls = getattr(diffusers, cls_name)
    # only what this scheduler takes: diffusers warns about every other key
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    config = {k: v for k, v in dict(base_config).items()
              if k in accepted and not k.startswith("_")}
    config.update({k: v for k, v in settings.items() if k in accepted})
    return cls(**config)


__all__ = ["DEFAULT_SAMPLER", "SAMPLERS", "canonical_name", "make_scheduler", "sampler_names"]
