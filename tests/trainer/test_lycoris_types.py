"""LoHa, LoKr and IA3 trained by lorabake on the tiny SD1.5-shaped model and saved in LyCORIS's
kohya layout: the deltas rebuilt from the FILE with the loaders' formulas (A1111/ComfyUI, as
the reference describes them; written here, not taken from the export code) and merged into a
fresh model reproduce the trained model's UNet and text-encoder outputs. Also: resume, the
demo config with each type, and `config check`'s warnings from the guide."""

from __future__ import annotations

import json
import re

import pytest

torch = pytest.importorskip("torch")

from lorabake_tui.core.config.check import check_config  # noqa: E402
from lorabake_tui.core.config.file import parse_config, set_value_in_text  # noqa: E402
from lorabake_tui.core.run import exit_codes  # noqa: E402
from lorabake_tui.trainer.__main__ import main as train_main  # noqa: E402

from ..support.train_fixtures import BASE, make_dataset, write_config  # noqa: E402
from .test_trainer_run import (  # noqa: E402
    _one_thread,  # noqa: F401 - autouse: one torch thread, no test hooks set
    assert_reproduces,
    outputs,
    read_lora,
    run,
    trained_model,
)

VARIANTS = {
    "loha-linear": {"network__type": "loha"},
    "loha-conv": {"network__type": "loha", "network__conv_dim": 2, "network__conv_alpha": 1},
    "lokr": {"network__type": "lokr", "network__conv_dim": 2, "network__conv_alpha": 1},
    "ia3": {"network__type": "ia3"},
}
# modules in the file (UNet, text encoder): LyCORIS's "full" preset; IA3's own layer set
COUNTS = {"loha-linear": (230, 72), "loha-conv": (282, 72), "lokr": (282, 72),
          "ia3": (80, 36)}


# ---- the loaders' side, from the reference ------------------------------------------------
def kohya_names(model, prefix: str, text_encoder: bool) -> dict[str, torch.nn.Module]:
    """kohya module name -> Linear/Conv2d of a plain (adapter-free) model."""
    out = {}
    for name, m in model.named_modules():
        if isinstance(m, torch.nn.Linear | torch.nn.Conv2d):
            if text_encoder and not name.startswith("text_model."):
                name = "text_model." + name
            out[prefix + name.replace(".", "_")] = m
    return out


def rebuilt_delta(t: dict[str, torch.Tensor], weight: torch.Tensor) -> torch.Tensor:
    """ΔW of one module from its saved tensors `t` (suffix -> tensor)."""
    shape = weight.shape
    if "hada_w1_a" in t:  # LoHa
        r = t["hada_w1_b"].shape[0]
        w1 = t["hada_w1_a"] @ t["hada_w1_b"]
        w2 = t["hada_w2_a"] @ t["hada_w2_b"]
        return (w1 * w2 * (t["alpha"] / r)).reshape(shape)
    if "lokr_w1" in t or "lokr_w1_a" in t:  # LoKr
        w1 = t["lokr_w1"] if "lokr_w1" in t else t["lokr_w1_a"] @ t["lokr_w1_b"]
        w2 = t["lokr_w2"] if "lokr_w2" in t else t["lokr_w2_a"] @ t["lokr_w2_b"]
        if "lokr_w1_b" in t:
            scale = t["alpha"] / t["lokr_w1_b"].shape[0]
        elif "lokr_w2_b" in t:
            scale = t["alpha"] / t["lokr_w2_b"].shape[0]
        else:
            scale = 1.0  # neither factor decomposed: alpha is ignored
        if w2.dim() == 4:
            w1 = w1[:, :, None, None]
        return (torch.kron(w1, w2) * scale).reshape(shape)
    if "on_input" in t:  # IA3 (A1111): the stored vector is the delta
        w = t["weight"]
        return weight * (w if bool(t["on_input"]) else w.reshape(-1, 1))
    raise AssertionError(f"unknown module type: {sorted(t)}")


def merge_file(path, model) -> dict[str, int]:
    """Add every module of the LyCORIS file to the fresh model's weights; counts per part."""
    tensors, _ = read_lora(path)
    modules: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        name, _, suffix = key.partition(".")
        modules.setdefault(name, {})[suffix] = value.float() if suffix != "on_input" else value
    targets = {**kohya_names(model.unet, "lora_unet_", False),
               **kohya_names(model.text_encoder, "lora_te_", True)}
    counts = {"unet": 0, "te": 0}
    with torch.no_grad():
        for name, t in modules.items():
            layer = targets[name]  # a name that is no layer of the model fails here
            layer.weight += rebuilt_delta(t, layer.weight)
            counts["unet" if name.startswith("lora_unet_") else "te"] += 1
    return counts


def train(tmp_path, variant: str, **extra):
    make_dataset(tmp_path, images=2)
    values = {"general__max_steps": 2, "saving__save_state": True, "general__unet_lr": 5e-2,
              "general__text_encoder_lr": 5e-2, **VARIANTS[variant], **extra}
    cfg = write_config(tmp_path, **values)
    run_dir = tmp_path / "out" / "r"
    assert run(cfg, run_dir) == exit_codes.DONE
    return run_dir


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_the_file_rebuilt_with_the_loaders_formulas_reproduces_the_trained_model(tmp_path,
                                                                                 variant):
    from lorabake_tui.trainer.base_model import load_base_model

    run_dir = train(tmp_path, variant)
    path = run_dir / "tiny.safetensors"
    tensors, meta = read_lora(path)
    trained = trained_model(run_dir, run_dir / "config.toml")
    fresh = load_base_model("builtin:tiny-sd15")
    base = outputs(fresh)
    assert merge_file(path, fresh) == dict(zip(("unet", "te"), COUNTS[variant], strict=True))
    assert_reproduces(trained, fresh, base)
    # LyCORIS's header keys
    algo = VARIANTS[variant]["network__type"]
    assert meta["ss_network_module"] == "lycoris.kohya"
    args = json.loads(meta["ss_network_args"])
    assert args["algo"] == algo
    if algo != "ia3":
        assert args["conv_dim"] == str(VARIANTS[variant].get("network__conv_dim", 0))
        assert args["preset"] == "full"
        conv = VARIANTS[variant].get("network__conv_dim", 0)
        kxk = re.compile(r".*(_conv1|_conv2|samplers_0_conv|_conv_in|_conv_out)\.alpha$")
        alphas = {k: float(v) for k, v in tensors.items() if k.endswith(".alpha")}
        assert all(v == (1.0 if kxk.match(k) else 2.0) for k, v in alphas.items())
        assert sum(1 for k in alphas if kxk.match(k)) == (52 if conv else 0)
    if variant == "lokr":
        # both forms of the second factor: whole in small layers, decomposed in wide ones
        assert any(k.endswith(".lokr_w2") for k in tensors)
        assert any(k.endswith(".lokr_w2_a") for k in tensors)
        conv = "lora_unet_down_blocks_0_resnets_0_conv1"
        assert float(tensors[f"{conv}.alpha"]) == 1.0
    if variant == "loha-conv":
        conv = "lora_unet_down_blocks_0_resnets_0_conv1"
        assert tensors[f"{conv}.hada_w1_b"].shape == (2, 8 * 3 * 3)
        assert float(tensors[f"{conv}.alpha"]) == 1.0
    if algo == "ia3":
        on_input = {k for k, v in tensors.items() if k.endswith(".on_input") and bool(v)}
        assert len(on_input) == 16 + 12
        assert all(k.endswith(("_ff_net_2.on_input", "_mlp_fc2.on_input")) for k in on_input)
        assert not any(k.endswith(".alpha") for k in tensors)


@pytest.mark.parametrize("kind", ["lokr", "ia3"])
def test_stop_and_resume_equal_a_straight_run(tmp_path, monkeypatch, kind):
    make_dataset(tmp_path, images=2)
    cfg = write_config(tmp_path, general__max_steps=4, network__type=kind,
                       network__conv_dim=2, optimizer__learning_rate=1e-2)
    straight = tmp_path / "out" / "straight"
    assert run(cfg, straight) == exit_codes.DONE
    monkeypatch.setenv("LORABAKE_TEST_SIGTERM_AT_STEP", "2")
    part = tmp_path / "out" / "part"
    assert run(cfg, part) == exit_codes.STOPPED
    monkeypatch.delenv("LORABAKE_TEST_SIGTERM_AT_STEP")
    assert train_main(["--resume", str(part)]) == exit_codes.DONE
    a, _ = read_lora(straight / "tiny.safetensors")
    b, _ = read_lora(part / "tiny.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    first, _ = read_lora(part / "tiny-step00000002.safetensors")
    assert any(not torch.equal(first[k], a[k]) for k in a)  # the resumed steps trained


@pytest.mark.parametrize("kind,lr", [("loha", 1e-4), ("lokr", 7e-5), ("ia3", 1e-2),
                                     ("dylora", 1e-4)])
def test_the_demo_config_trains_with_each_type(tmp_path, kind, lr):
    from lorabake_tui.demo.project import ensure_demo

    root, _ = ensure_demo(tmp_path / "demo")
    cfg = root / ".lorabake" / "training.toml"
    text = cfg.read_text()
    for section, key, value in (("general", "max_steps", 2), ("general", "cache_latents", "none"),
                                ("network", "type", kind), ("optimizer", "learning_rate", lr)):
        text = set_value_in_text(text, section, key, value)
    cfg.write_text(text)
    run_dir = tmp_path / "run"
    assert run(cfg, run_dir) == exit_codes.DONE
    tensors, meta = read_lora(run_dir / "demo.safetensors")
    args = json.loads(meta["ss_network_args"])
    assert args.get("algo", "dylora" if "unit" in args else None) == kind
    suffix = {"loha": ".hada_w1_a", "lokr": ".lokr_w1", "ia3": ".on_input",
              "dylora": ".lora_down.weight"}[kind]
    assert sum(k.endswith(suffix) for k in tensors) > 100
    assert all(torch.isfinite(t).all() for t in tensors.values())


def findings(**values) -> dict[str, str]:
    """config check's findings (key -> message) on the test config; the UNet and text encoder
    take optimizer.learning_rate unless a test sets their own."""
    values = {"general__unet_lr": 0, "general__text_encoder_lr": 0, **values}
    text = BASE
    for k, v in values.items():
        section, key = k.split("__")
        text = set_value_in_text(text, section, key, v)
    return {f.key: f.message for f in check_config(parse_config(text), check_paths=False)}


def test_config_check_gives_the_guides_warnings_for_each_type():
    for kind in ("loha", "lokr", "ia3", "dylora"):
        assert "network.type" not in findings(network__type=kind)  # trainable now
    # LoHa and LoKr: dim 32 at most
    for kind in ("loha", "lokr"):
        assert "32 or less" in findings(network__type=kind, network__dim=64)["network.dim"]
        assert "network.dim" not in findings(network__type=kind, network__dim=32,
                                             network__alpha=16)
    assert "network.dim" not in findings(network__type="lora", network__dim=64)
    # LoKr: 5e-5 .. 9e-5 with AdamW, checked where the rate is set
    lokr = findings(network__type="lokr", optimizer__learning_rate=1e-4)
    assert "between 5e-05 and 9e-05" in lokr["optimizer.learning_rate"]
    assert "optimizer.learning_rate" not in findings(network__type="lokr",
                                                     optimizer__learning_rate=7e-5)
    lokr = findings(network__type="lokr", optimizer__learning_rate=7e-5, general__unet_lr=1e-3)
    assert "general.unet_lr" in lokr and "optimizer.learning_rate" not in lokr
    # the UNet's rate counts (the text encoder's is often lower), not an unused one
    lokr = findings(network__type="lokr", optimizer__learning_rate=1e-4, general__unet_lr=6e-5,
                    general__text_encoder_lr=3e-5)
    assert not {"general.unet_lr", "general.text_encoder_lr", "optimizer.learning_rate"} & \
        set(lokr)
    lokr = findings(network__type="lokr", general__train="text_encoder",
                    general__text_encoder_lr=3e-5)
    assert "general.text_encoder_lr" in lokr
    # IA3: 5e-3 .. 1e-2 with AdamW, 1 with Prodigy
    ia3 = findings(network__type="ia3", optimizer__learning_rate=1e-4)
    assert "between 0.005 and 0.01" in ia3["optimizer.learning_rate"]
    assert "optimizer.learning_rate" not in findings(network__type="ia3",
                                                     optimizer__learning_rate=5e-3)
    prodigy = findings(network__type="ia3", optimizer__type="Prodigy",
                       optimizer__learning_rate=1e-2)
    assert "learning_rate = 1" in prodigy["optimizer.learning_rate"]
    assert "optimizer.learning_rate" not in findings(network__type="ia3",
                                                     optimizer__type="Prodigy",
                                                     optimizer__learning_rate=1.0)
    # what LyCORIS networks do not use
    f = findings(network__type="loha", network__dropout=0.1, optimizer__scale_weight_norms=1.0)
    assert "no network dropout" in f["network.dropout"]
    assert "LoRA and LoCon only" in f["optimizer.scale_weight_norms"]
    assert "network.dropout" not in findings(network__type="lora", network__dropout=0.1)
    for kind in ("ia3", "dylora"):
        assert "not used" in findings(network__type=kind, network__conv_dim=4)["network.conv_dim"]
    assert "network.conv_dim" not in findings(network__type="loha", network__conv_dim=4)
