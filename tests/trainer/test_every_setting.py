"""Every setting in the schema is honoured: it is marked export-only (schema.py,
`export_only=True`; `config check` then says the trainer ignores it), or a valid value of its
own changes what the trainer does on the tiny model. A setting added to the schema without
either fails here by name, with what to add.

How a setting is shown to matter, cheaply: short real runs (2 images, 2 steps, UNet only)
compared with a reference run that differs in that one setting, on an observable only that
setting can move:
- the loss of the first step: computed before any update, so optimizer, schedule and saving
  settings cannot change it, and neither can which adapters exist (they start at zero);
- the learning rate of each parameter group after each step (the schedule; nothing about
  the data or the loss moves it);
- the trained weights (only for settings that run alone against their reference);
- the file's tensor names, shapes, dtypes and alphas, its metadata, the run folder's files,
  the start event's counts, warnings;
- the objects the trainer built (the optimizer's groups, the UNet's flags), captured as the
  trainer made them (a call-through wrapper around Trainer._prepare).
So one run can carry a few settings when each is read on an observable the others cannot
move; every pairing is listed in RUNS. Bucket and dataset settings are read on the data the
trainer loads (its own config reader and data loader, no model), which is all they feed.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from PIL import Image, ImageDraw  # noqa: E402

from lorabake_tui.core.config.file import set_value_in_text  # noqa: E402
from lorabake_tui.core.config.schema import BY_NAME, SETTINGS  # noqa: E402
from lorabake_tui.core.run.event_reader import read_all_events  # noqa: E402
from lorabake_tui.core.run.folder import RunFolder  # noqa: E402
from lorabake_tui.trainer.__main__ import main as train_main  # noqa: E402
from lorabake_tui.trainer.loop import Trainer  # noqa: E402

BASE = '''[general]
base_model = "builtin:tiny-sd15"
mixed_precision = "no"
cache_latents = "memory"
max_token_length = 75
train = "unet"
epochs = 2

[data]
train_dir = "data"

[network]
dim = 4
alpha = 2

[buckets]
resolution = 64
min = 64
max = 128

[saving]
output_dir = "out"
output_name = "tiny"
'''
# the captions carry the separator so keep_tokens_separator has something to split on
CAPTIONS = ["mychar, 1girl ||| red hair, smile, outdoors", "mychar, solo ||| sky, smile, hat"]
PROMPT = ["mychar, red hair --w 64 --h 64"]  # kohya's size options: 512 px is slow
PRODIGY = {"optimizer.type": "Prodigy", "optimizer.learning_rate": 1.0,
           "optimizer.weight_decay": 0.05, "optimizer.betas": [0.8, 0.99],
           "optimizer.d_coef": 1.5, "optimizer.decouple": False,
           "optimizer.use_bias_correction": False, "optimizer.safeguard_warmup": False}
NETWORK = {"network.type": "locon", "network.dim": 2, "network.alpha": 1.0,
           "network.conv_dim": 3, "network.conv_alpha": 0.5}
RES128 = {"buckets.resolution": 128}
DOWN = {"network.down_lr_weight": ",".join(["0.1"] * 12)}
DIMS = {"network.block_dims": [1] * 12 + [2] + [3] * 12}
CONV_DIMS = {**NETWORK, **DIMS, "network.conv_block_dims": [1] * 25}

# name -> the overrides of BASE it trains with. "plan:" runs only load the trainer's data.
RUNS: dict[str, dict[str, Any]] = {
    "base": {},
    # a diffusers folder holding the tiny model with one UNet layer changed
    "model": {"general.base_model": "model2"},
    "clip": {"general.clip_skip": 1, "optimizer.scheduler": "constant",
             "saving.comment": "honoured"},
    "seed": {"general.seed": 43, "optimizer.scheduler_cycles": 2,
             "saving.tag_occurrence": False},
    "bf16": {"general.mixed_precision": "bf16", "optimizer.warmup_ratio": 0.5,
             "saving.precision": "float"},
    "mtl": {"general.max_token_length": 150, "general.unet_lr": 2e-4,
            "saving.output_name": "renamed"},
    "capext": {"data.caption_extension": ".caption", "general.unet_lr": 0.0,
               "optimizer.learning_rate": 7e-4},
    "shuffle": {"data.shuffle_caption": False, "saving.every_n_epochs": 2},
    "keep0": {"data.keep_tokens": 0, "saving.save_state": True},
    "sep": {"data.keep_tokens_separator": "|||"},
    "ep3": {"data.caption_dropout_rate": 1.0, "general.epochs": 3},
    "keep": {"data.caption_tag_dropout_rate": 1.0, "general.epochs": 3, "saving.keep_last": 1},
    "warm": {"data.token_warmup_step": 100, "saving.state_every_n_steps": 1},
    "warmmin": {"data.token_warmup_step": 100, "data.token_warmup_min": 3,
                "logging.tensorboard": True},
    "flip": {"data.flip_aug": True, "general.max_steps": 1},
    # without cached latents (color_aug and random_crop need that); no sampling in these two
    "nocache": {"general.cache_latents": "none", "sampling.prompts": PROMPT},
    "color": {"general.cache_latents": "none", "data.color_aug": True,
              "sampling.every_n_epochs": 1},
    "crop": {"general.cache_latents": "none", "data.random_crop": True,
             "sampling.every_n_epochs": 1, "sampling.prompts": PROMPT, "sampling.steps": 2},
    "steps": {"general.cache_latents": "none", "data.random_crop": True,
              "sampling.every_n_epochs": 1, "sampling.prompts": PROMPT, "sampling.steps": 4},
    # 5 would leave most timesteps as they are; a run without --run-dir: its folder is made
    # in saving.output_dir
    "snr": {"optimizer.min_snr_gamma": 0.05, "saving.output_dir": "elsewhere"},
    "offset": {"noise.offset": 0.1, **PRODIGY},
    "multires": {"noise.multires_iterations": 6, "general.gradient_checkpointing": True},
    "discount": {"noise.multires_iterations": 6, "noise.multires_discount": 0.6,
                 "general.gradient_checkpointing": True},
    "dropout": {"network.dropout": 0.1},
    "clipnorm": {"optimizer.max_grad_norm": 1e-3},
    "maxnorm": {"optimizer.scale_weight_norms": 1e-5},  # 2 steps leave small updates
    "net": {"general.batch_size": 1, "general.attention": "xformers", **NETWORK},
    "te": {"general.train": "text_encoder", "general.text_encoder_lr": 3e-5},
    "resumed": {"data.keep_tokens": 0, "saving.save_state": True, "general.epochs": 3,
                "saving.resume": "run-keep0"},  # continues from keep0's saved state
    "reg": {"data.reg_dir": "reg"},
    "prior": {"data.reg_dir": "reg", "data.prior_loss_weight": 0.5},
    "dylora": {"network.type": "dylora", "network.dylora_unit": 2},
    "dylora4": {"network.type": "dylora"},
    # one image a batch: two batches an epoch, which accumulation then adds up
    "bs1": {"general.batch_size": 1},
    "accum": {"general.batch_size": 1, "optimizer.gradient_accumulation_steps": 2},
    # kohya's block-wise arguments (LoRA/LoCon)
    "bdown": DOWN,
    "bzero": {**DOWN, "network.block_lr_zero_threshold": 0.2},
    "bup": {"network.up_lr_weight": "sine"},
    "bmid": {"network.mid_lr_weight": 0.5},
    "bdims": DIMS,
    "balphas": {**DIMS, "network.block_alphas": [0.5] * 25},
    "cbase": {**NETWORK, **DIMS},
    "cbdims": CONV_DIMS,
    "cbalphas": {**CONV_DIMS, "network.conv_block_alphas": [0.25] * 25},
    "plan:base": {},
    "plan:data2": {"data.train_dir": "data2"},
    "plan:128": RES128,
    "plan:enable": {**RES128, "buckets.enable": False},
    "plan:min": {**RES128, "buckets.min": 128},
    "plan:max": {**RES128, "buckets.max": 256},
    "plan:step": {**RES128, "buckets.step": 32},
    "plan:no_upscale": {**RES128, "buckets.no_upscale": True},
}


@dataclass
class Run:
    name: str
    events: list[dict] = field(default_factory=list)
    files: set[str] = field(default_factory=set)
    tensors: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, str] = field(default_factory=dict)
    built: dict[str, Any] = field(default_factory=dict)  # what Trainer._prepare made
    buckets: list[tuple[int, int]] = field(default_factory=list)  # per image (plan runs)
    images: int = 0
    dir: Path | None = None

    def of(self, kind: str) -> list[dict]:
        return [e for e in self.events if e["type"] == kind]

    @property
    def losses(self) -> list[float]:
        return [e["loss"] for e in self.of("step")]

    @property
    def lrs(self) -> list[list[float]]:
        return [e["lr"] for e in self.of("step")]

    @property
    def start(self) -> dict:
        return self.of("start")[0]

    def lora(self, name: str = "tiny") -> dict[str, Any]:
        return self.tensors[name]


def _config_text(overrides: dict[str, Any]) -> str:
    text = BASE
    for name, value in overrides.items():
        section, key = name.split(".")
        text = set_value_in_text(text, section, key, value)
    return text


def _dataset(root: Path) -> None:
    def image(path: Path, size, colour) -> None:
        im = Image.new("RGB", size, colour)
        ImageDraw.Draw(im).ellipse((6, 10, 40, 40), fill=(220, 30, 30))
        im.save(path)

    folder = root / "data" / "1_mychar"
    folder.mkdir(parents=True)
    for i, (size, caption) in enumerate(zip([(64, 64), (96, 64)], CAPTIONS, strict=True)):
        image(folder / f"img{i}.png", size, (40 + 90 * i, 120, 200 - 60 * i))
        (folder / f"img{i}.txt").write_text(caption + "\n")
    other = root / "data2" / "1_mychar"
    other.mkdir(parents=True)
    for i in range(3):
        image(other / f"o{i}.png", (64, 64), (30 * i, 90, 90))
    reg = root / "reg" / "1_woman"
    reg.mkdir(parents=True)
    image(reg / "r0.png", (64, 64), (90, 90, 30))


def _other_model(folder: Path) -> None:
    import shutil

    from lorabake_tui.trainer.base_model import BUILTIN_TINY, SD15_CONFIG_DATA, load_base_model

    tiny = load_base_model(BUILTIN_TINY)
    folder.mkdir()
    shutil.copy(SD15_CONFIG_DATA / "model_index.json", folder / "model_index.json")
    with torch.no_grad():
        tiny.unet.conv_out.weight.mul_(1.5)
    tiny.unet.save_pretrained(folder / "unet")
    tiny.vae.save_pretrained(folder / "vae")
    tiny.text_encoder.save_pretrained(folder / "text_encoder")


def _read(path: Path):
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, f.metadata()  # noqa: SIM118


def _facts(st) -> dict[str, Any]:
    opt = getattr(st.opt, "optimizer", st.opt)
    return {
        "optimizer": type(opt).__name__,
        "groups": [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups],
        "checkpointing": bool(st.raw_unet.is_gradient_checkpointing),
        "processors": sorted({type(p).__name__ for p in st.raw_unet.attn_processors.values()}),
    }


class Runs:
    """Each run once per module, on demand."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.done: dict[str, Run] = {}
        _dataset(root)

    def __call__(self, name: str) -> Run:
        if name == "resumed":
            self("keep0")
        if name == "model" and not (self.root / "model2").exists():
            _other_model(self.root / "model2")
        if name not in self.done:
            self.done[name] = self._plan(name) if name.startswith("plan:") else self._train(name)
        return self.done[name]

    def _config(self, name: str) -> Path:
        path = self.root / f"{name.replace(':', '-')}.toml"
        path.write_text(_config_text(RUNS[name]))
        return path

    def _plan(self, name: str) -> Run:
        from lorabake_tui.trainer.data import load_train_data
        from lorabake_tui.trainer.run_config import load_run_config

        data = load_train_data(load_run_config(self._config(name)).plan)
        return Run(name, buckets=[s.bucket for s in sorted(data.samples, key=lambda s: s.key)],
                   images=len(data.samples))

    def _train(self, name: str) -> Run:
        cfg = self._config(name)
        elsewhere = "saving.output_dir" in RUNS[name]
        run = Run(name, dir=None if elsewhere else self.root / f"run-{name}")
        original = Trainer._prepare

        def spy(trainer, acc, seed):  # calls the real _prepare, notes what it built
            st = original(trainer, acc, seed)
            run.built = _facts(st)
            return st

        Trainer._prepare = spy
        stderr, sys.stderr = sys.stderr, open(os.devnull, "w")  # noqa: SIM115
        try:
            code = train_main([str(cfg)] if elsewhere else
                              [str(cfg), "--run-dir", str(run.dir)])
        finally:
            sys.stderr.close()
            sys.stderr = stderr
            Trainer._prepare = original
        if elsewhere:
            made = list((self.root / RUNS[name]["saving.output_dir"]).iterdir())
            assert len(made) == 1, made
            run.dir = made[0]
        run.events = read_all_events(RunFolder(run.dir).events)
        assert code == 0, f"run {name} failed: {run.of('end')}"
        run.files = {str(p.relative_to(run.dir)) for p in run.dir.rglob("*")}
        for p in run.dir.glob("*.safetensors"):
            tensors, meta = _read(p)
            run.tensors[p.stem] = tensors
            if p.stem in ("tiny", "renamed"):
                run.meta = meta
        return run


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    torch.set_num_threads(1)  # two test workers on two cores
    return Runs(tmp_path_factory.mktemp("every-setting"))


# ---- the observables ---------------------------------------------------------------------


def first_loss(var: Run, ref: Run) -> None:
    assert not math.isclose(var.losses[0], ref.losses[0], rel_tol=1e-7), \
        (var.losses, ref.losses)


def losses(var: Run, ref: Run) -> None:
    assert var.losses != pytest.approx(ref.losses, rel=1e-7)


def lrs(var: Run, ref: Run) -> None:
    a, b = [x for g in var.lrs for x in g], [x for g in ref.lrs for x in g]
    assert len(a) != len(b) or a != pytest.approx(b, rel=1e-7), (var.lrs, ref.lrs)


def lr_ratio(ratio: float):
    """The UNet group's rate is the base's times `ratio` at every step."""
    def check(var: Run, ref: Run) -> None:
        got = [g[0] for g in var.lrs]
        want = [g[0] * ratio for g in ref.lrs]
        assert got == pytest.approx(want, rel=1e-6) and got != pytest.approx(
            [g[0] for g in ref.lrs], rel=1e-6)
    return check


def weights(var: Run, ref: Run) -> None:
    a, b = var.lora(), ref.lora()
    assert a.keys() == b.keys()
    assert any(not torch.equal(a[k], b[k]) for k in a if k.endswith(".weight"))


def start(key: str):
    def check(var: Run, ref: Run) -> None:
        assert var.start[key] != ref.start[key], (var.start[key], ref.start[key])
    return check


def meta(key: str):
    def check(var: Run, ref: Run) -> None:
        assert var.meta.get(key) != ref.meta.get(key), (var.meta.get(key), ref.meta.get(key))
    return check


def built(key: str):
    def check(var: Run, ref: Run) -> None:
        assert var.built[key] != ref.built[key]
    return check


def group(key: str, value):
    """The optimizer the trainer built holds `value` for `key` (the base's does not)."""
    def check(var: Run, ref: Run) -> None:
        got = var.built["groups"][0][key]
        got = tuple(got) if isinstance(got, list | tuple) else got
        assert got == value and ref.built["groups"][0].get(key) != got, got
    return check


def buckets(var: Run, ref: Run) -> None:
    assert var.buckets != ref.buckets, var.buckets


def _lora_keys(run: Run, *, conv: bool):
    t = run.lora()
    names = {k.rsplit(".", 2)[0] for k in t if k.endswith("lora_down.weight")}
    return sorted(n for n in names if ("resnets" in n or "samplers" in n) == conv)


def network_type(var: Run, ref: Run) -> None:
    assert _lora_keys(var, conv=True) and not _lora_keys(ref, conv=True)


def rank(var: Run, ref: Run) -> None:
    n = _lora_keys(var, conv=False)[0]
    assert var.lora()[f"{n}.lora_down.weight"].shape[0] == 2
    assert ref.lora()[f"{n}.lora_down.weight"].shape[0] == 4


def alpha(var: Run, ref: Run) -> None:
    n = _lora_keys(var, conv=False)[0]
    assert float(var.lora()[f"{n}.alpha"]) == 1.0 and float(ref.lora()[f"{n}.alpha"]) == 2.0


def conv_rank(var: Run, ref: Run) -> None:  # 3, where it would follow dim (2) without it
    t = var.lora()
    convs = [n for n in _lora_keys(var, conv=True) if t[f"{n}.lora_down.weight"].ndim == 4
             and t[f"{n}.lora_down.weight"].shape[-1] == 3]
    assert convs and all(t[f"{n}.lora_down.weight"].shape[0] == 3 for n in convs)


def conv_alpha(var: Run, ref: Run) -> None:  # 0.5, where it would follow alpha (1)
    t = var.lora()
    convs = [n for n in _lora_keys(var, conv=True) if t[f"{n}.lora_down.weight"].shape[0] == 3]
    assert convs and all(float(t[f"{n}.alpha"]) == 0.5 for n in convs)


def modules(var: Run, ref: Run) -> None:
    """The file holds other modules (a block left without an adapter)."""
    assert var.lora().keys() != ref.lora().keys()


def shapes(var: Run, ref: Run) -> None:
    a, b = var.lora(), ref.lora()
    assert {k: tuple(t.shape) for k, t in a.items()} != {k: tuple(t.shape) for k, t in b.items()}


def alphas(var: Run, ref: Run) -> None:
    a, b = var.lora(), ref.lora()
    assert a.keys() == b.keys()
    assert any(not torch.equal(a[k], b[k]) for k in a if k.endswith(".alpha"))


def files(present: str | None = None, absent: str | None = None):
    def check(var: Run, ref: Run) -> None:
        if present:
            assert present in var.files and present not in ref.files, sorted(var.files)
        if absent:
            assert absent not in var.files and absent in ref.files, sorted(var.files)
    return check


def epoch_files(var: Run, ref: Run) -> None:
    def count(r):
        return len([f for f in r.files if f.startswith("tiny-0")])
    assert count(var) == 1 and count(ref) == 2


def state_saves(var: Run, ref: Run) -> None:
    def steps(r):
        return [e["step"] for e in r.of("save") if e.get("kind") == "state"]
    assert 1 in steps(var) and not steps(ref)


def saved_dtype(var: Run, ref: Run) -> None:
    a, b = var.lora(), ref.lora()
    assert {t.dtype for t in a.values()} == {torch.float32}
    assert torch.float16 in {t.dtype for t in b.values()}


def trained_models(var: Run, ref: Run) -> None:
    a, b = var.lora(), ref.lora()
    assert not any(k.startswith("lora_unet_") for k in a) and any(
        k.startswith("lora_te_") for k in a)
    assert any(k.startswith("lora_unet_") for k in b) and not any(
        k.startswith("lora_te_") for k in b)


def te_rate(var: Run, ref: Run) -> None:
    # the only group is the text encoder's; the base's UNet group runs the same schedule
    got = [g[0] for g in var.lrs]
    assert got == pytest.approx([g[0] * 3e-5 / 1e-4 for g in ref.lrs], rel=1e-6)


def attention(var: Run, ref: Run) -> None:
    said = [e for e in var.of("warning") if "xformers" in e["message"]]
    assert said or var.built["processors"] != ref.built["processors"]


def tensorboard(var: Run, ref: Run) -> None:
    said = [e for e in var.of("warning") if "tensorboard" in e["message"]]
    made = any(f.startswith("tensorboard/") for f in var.files)
    assert (made or len(said) == 1) and not any(f.startswith("tensorboard") for f in ref.files)


def samples(var: Run, ref: Run) -> None:
    assert any(f.startswith("samples/") for f in var.files)
    assert not any(f.startswith("samples/") for f in ref.files)


def sample_pixels(var: Run, ref: Run) -> None:
    def pictures(r):
        return {f: Image.open(r.dir / f).tobytes() for f in sorted(r.files)
                if f.startswith("samples/") and f.endswith(".png")}
    a, b = pictures(var), pictures(ref)
    assert a and a.keys() == b.keys() and a != b


def output_dir(var: Run, ref: Run) -> None:
    assert var.dir.parent.name == "elsewhere" and var.dir.name.startswith("tiny-")
    assert (var.dir / "tiny.safetensors").is_file()


def resumed(var: Run, ref: Run) -> None:
    first = [e["step"] for e in var.of("step")][0]
    assert first == 3 and ref.of("step")[0]["step"] == 1  # steps 1-2 came from the state


def images(var: Run, ref: Run) -> None:
    assert var.images == 3 and ref.images == 2


def reg_samples(var: Run, ref: Run) -> None:
    assert var.start["reg_samples"] > 0 and ref.start["reg_samples"] == 0


# setting -> (its run, the reference run, the check)
CHECKS: dict[str, tuple[str, str, Any]] = {
    "general.base_model": ("model", "base", first_loss),
    "general.clip_skip": ("clip", "base", first_loss),
    "general.seed": ("seed", "base", first_loss),
    "general.mixed_precision": ("bf16", "base", first_loss),
    "general.batch_size": ("net", "base", start("total_steps")),
    "general.max_token_length": ("mtl", "base", first_loss),
    "general.epochs": ("ep3", "base", start("total_steps")),
    "general.max_steps": ("flip", "base", start("total_steps")),
    "general.gradient_checkpointing": ("multires", "base", built("checkpointing")),
    "general.attention": ("net", "base", attention),
    "general.cache_latents": ("nocache", "base", first_loss),
    "general.train": ("te", "base", trained_models),
    "general.unet_lr": ("mtl", "base", lr_ratio(2.0)),
    "general.text_encoder_lr": ("te", "base", te_rate),
    "data.train_dir": ("plan:data2", "plan:base", images),
    "data.reg_dir": ("reg", "base", reg_samples),
    "data.prior_loss_weight": ("prior", "reg", losses),
    "data.caption_extension": ("capext", "base", first_loss),
    # the first step's random order happens to be the written one: the second step shows it
    "data.shuffle_caption": ("shuffle", "base", losses),
    "data.keep_tokens": ("keep0", "base", first_loss),
    "data.keep_tokens_separator": ("sep", "base", first_loss),
    "data.caption_dropout_rate": ("ep3", "base", first_loss),
    "data.caption_tag_dropout_rate": ("keep", "base", first_loss),
    "data.token_warmup_min": ("warmmin", "warm", first_loss),
    "data.token_warmup_step": ("warm", "base", first_loss),
    "data.flip_aug": ("flip", "base", first_loss),
    "data.color_aug": ("color", "nocache", losses),
    "data.random_crop": ("crop", "nocache", first_loss),
    "network.type": ("net", "base", network_type),
    "network.dim": ("net", "base", rank),
    "network.alpha": ("net", "base", alpha),
    "network.conv_dim": ("net", "base", conv_rank),
    "network.conv_alpha": ("net", "base", conv_alpha),
    "network.dropout": ("dropout", "base", weights),
    "network.dylora_unit": ("dylora", "dylora4", weights),
    "network.down_lr_weight": ("bdown", "base", lrs),
    "network.mid_lr_weight": ("bmid", "base", lrs),
    "network.up_lr_weight": ("bup", "base", lrs),
    "network.block_lr_zero_threshold": ("bzero", "bdown", modules),
    "network.block_dims": ("bdims", "base", shapes),
    "network.block_alphas": ("balphas", "bdims", alphas),
    "network.conv_block_dims": ("cbdims", "cbase", shapes),
    "network.conv_block_alphas": ("cbalphas", "cbdims", alphas),
    "optimizer.gradient_accumulation_steps": ("accum", "bs1", start("total_steps")),
    "optimizer.type": ("offset", "base", built("optimizer")),
    "optimizer.learning_rate": ("capext", "base", lr_ratio(7.0)),
    "optimizer.weight_decay": ("offset", "base", group("weight_decay", 0.05)),
    "optimizer.betas": ("offset", "base", group("betas", (0.8, 0.99))),
    "optimizer.max_grad_norm": ("clipnorm", "base", weights),
    "optimizer.d_coef": ("offset", "base", group("d_coef", 1.5)),
    "optimizer.decouple": ("offset", "base", group("decouple", False)),
    "optimizer.use_bias_correction": ("offset", "base", group("use_bias_correction", False)),
    "optimizer.safeguard_warmup": ("offset", "base", group("safeguard_warmup", False)),
    "optimizer.scheduler": ("clip", "base", lrs),
    "optimizer.scheduler_cycles": ("seed", "base", lrs),
    "optimizer.warmup_ratio": ("bf16", "base", lrs),
    "optimizer.min_snr_gamma": ("snr", "base", first_loss),
    "optimizer.scale_weight_norms": ("maxnorm", "base", weights),
    "noise.offset": ("offset", "base", first_loss),
    "noise.multires_iterations": ("multires", "base", first_loss),
    "noise.multires_discount": ("discount", "multires", first_loss),
    "buckets.enable": ("plan:enable", "plan:128", buckets),
    "buckets.resolution": ("plan:128", "plan:base", buckets),
    "buckets.min": ("plan:min", "plan:128", buckets),
    "buckets.max": ("plan:max", "plan:128", buckets),
    "buckets.step": ("plan:step", "plan:128", buckets),
    "buckets.no_upscale": ("plan:no_upscale", "plan:128", buckets),
    "saving.output_dir": ("snr", "base", output_dir),
    "saving.output_name": ("mtl", "base", files("renamed.safetensors", "tiny.safetensors")),
    "saving.precision": ("bf16", "base", saved_dtype),
    "saving.every_n_epochs": ("shuffle", "base", files(absent="tiny-000001.safetensors")),
    "saving.keep_last": ("keep", "ep3", epoch_files),
    "saving.save_state": ("keep0", "base", files(present="state")),
    "saving.state_every_n_steps": ("warm", "base", state_saves),
    "saving.resume": ("resumed", "ep3", resumed),
    "saving.comment": ("clip", "base", meta("ss_training_comment")),
    "saving.tag_occurrence": ("seed", "base", meta("ss_tag_frequency")),
    "sampling.every_n_epochs": ("crop", "nocache", samples),
    "sampling.prompts": ("crop", "color", samples),
    "sampling.steps": ("steps", "crop", sample_pixels),
    "logging.tensorboard": ("warmmin", "warm", tensorboard),
}


def _value(run: str, name: str):
    overrides = RUNS[run]
    if name in overrides:
        return overrides[name]
    from lorabake_tui.core.config.file import parse_config

    section, key = name.split(".")
    doc = parse_config(BASE)
    return doc.data.get(section, {}).get(key, BY_NAME[name].default)


@pytest.mark.parametrize("name", [st.name for st in SETTINGS])
def test_every_setting_is_honoured_or_export_only(name, runs):
    st = BY_NAME[name]
    if st.export_only:
        assert name not in CHECKS, f"{name} is marked export_only but has a check here"
        return
    assert name in CHECKS, (
        f"{name} is neither marked export-only (`export_only=True` in "
        "lorabake_tui/core/config/schema.py, when lorabake's trainer ignores it) nor shown "
        f"to change what the trainer does: add a run and a check for it to CHECKS in {__file__}")
    run, ref, check = CHECKS[name]
    # the two runs differ in this setting: the check reads its effect
    assert _value(run, name) != _value(ref, name), name
    check(runs(run), runs(ref))


def test_the_tables_name_only_settings_of_the_schema():
    assert set(CHECKS) <= set(BY_NAME), set(CHECKS) - set(BY_NAME)
    used = {n for overrides in RUNS.values() for n in overrides}
    assert used <= set(BY_NAME), used - set(BY_NAME)
    for name, (run, ref, _) in CHECKS.items():
        assert run in RUNS and ref in RUNS, name
