"""Real trainer runs on CPU with the built-in tiny SD1.5-shaped model: the LoRA file loads
in diffusers and reproduces the trained model, metadata, events, resume, stop, NaN."""

from __future__ import annotations

import json
import math
import os
import re

import pytest

torch = pytest.importorskip("torch")

from lorabake_tui.core.run import exit_codes  # noqa: E402
from lorabake_tui.core.run.event_reader import read_all_events  # noqa: E402
from lorabake_tui.core.run.folder import RunFolder  # noqa: E402
from lorabake_tui.trainer.__main__ import main as train_main  # noqa: E402

from ..support.train_fixtures import make_dataset, write_config  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch):
    # two pytest workers on two cores: more torch threads than cores makes CPU runs crawl
    torch.set_num_threads(1)
    for var in ("LORABAKE_TEST_NAN_AT_STEP", "LORABAKE_TEST_SIGTERM_AT_STEP"):
        monkeypatch.delenv(var, raising=False)


def run(cfg, run_dir, *extra) -> int:
    return train_main([str(cfg), "--run-dir", str(run_dir), *extra])


def events(run_dir):
    return read_all_events(RunFolder(run_dir).events)


def read_lora(path):
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, f.metadata()  # noqa: SIM118


def trained_model(run_dir, cfg_path):
    """The base model with the run's saved fp32 adapter state: what the loop trained."""
    from lorabake_tui.trainer.base_model import load_base_model
    from lorabake_tui.trainer.network import attach, load_adapter_state, lora_configs
    from lorabake_tui.trainer.run_config import load_run_config
    from lorabake_tui.trainer.state import find_state, load_adapters

    s = load_run_config(cfg_path).settings
    m = load_base_model("builtin:tiny-sd15")
    what, n = s.general.train, s.network
    net = lora_configs(n.type, n.dim, n.alpha, n.conv_dim, n.conv_alpha, 0.0,
                       unet=what != "text_encoder", text_encoder=what != "unet",
                       dylora_unit=n.dylora_unit)
    attach(net, m.unet, m.text_encoder)
    saved = load_adapters(find_state(run_dir))
    if net.unet_config is not None:
        load_adapter_state(m.unet, saved["unet"])
    if net.te_config is not None:
        load_adapter_state(m.text_encoder, saved["te"])
    return m


def outputs(m):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 8, 8, generator=g)
    ids = torch.randint(0, 49406, (2, 77), generator=g)
    with torch.no_grad():
        states = m.text_encoder(ids).last_hidden_state
        out = m.unet(x, torch.tensor([10, 700]), states).sample
    return states, out


def assert_reproduces(trained, merged, base) -> None:
    """`merged` (a fresh base model with the file applied) gives `trained`'s text-encoder and
    UNet outputs within 1e-5; `base` (outputs(fresh) before applying) shows that training
    moved both well beyond that, so a wrong scale cannot pass."""
    (want_states, want_out), (got_states, got_out) = outputs(trained), outputs(merged)
    base_states, base_out = base
    assert (want_out - base_out).abs().max() > 1e-3
    assert (want_states - base_states).abs().max() > 1e-3
    assert (got_states - want_states).abs().max() <= 1e-5
    assert (got_out - want_out).abs().max() <= 1e-5


def assert_diffusers_reproduces(run_dir):
    """diffusers' load_lora_weights on a fresh, identically built pipeline gives the trained
    model's UNet and text-encoder outputs."""
    from diffusers import StableDiffusionPipeline

    from lorabake_tui.trainer.base_model import load_base_model

    trained = trained_model(run_dir, run_dir / "config.toml")
    fresh = load_base_model("builtin:tiny-sd15")
    base_states, base_out = outputs(fresh)
    pipe = StableDiffusionPipeline(vae=fresh.vae, text_encoder=fresh.text_encoder,
                                   tokenizer=fresh.tokenizer, unet=fresh.unet,
                                   scheduler=fresh.noise_scheduler, safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    pipe.load_lora_weights(str(run_dir / "tiny.safetensors"))
    want_states, want_out = outputs(trained)
    got_states, got_out = outputs(fresh)
    assert (want_out - base_out).abs().max() > 1e-4  # training changed something
    assert (got_states - want_states).abs().max() <= 1e-5
    assert (got_out - want_out).abs().max() <= 1e-5


def test_lora_run_writes_kohya_file_that_diffusers_loads_exactly(tmp_path):
    make_dataset(tmp_path, images=3)  # 3 batches an epoch: 4 steps save epoch 1, then the end
    cfg = write_config(tmp_path, general__max_steps=4, saving__save_state=True)
    run_dir = tmp_path / "out" / "r"
    assert run(cfg, run_dir) == exit_codes.DONE
    assert {p.name for p in run_dir.glob("*.safetensors")} == {"tiny-000001.safetensors",
                                                               "tiny.safetensors"}
    tensors, meta = read_lora(run_dir / "tiny.safetensors")
    unet = {k[:-6] for k in tensors if k.startswith("lora_unet_") and k.endswith(".alpha")}
    te = {k[:-6] for k in tensors if k.startswith("lora_te_text_model_") and k.endswith(".alpha")}
    assert len(unet) == 192 and len(te) == 72
    assert len(tensors) == 3 * (192 + 72)
    assert all(float(tensors[f"{m}.alpha"]) == 2.0 for m in unet | te)
    assert tensors["lora_unet_mid_block_attentions_0_proj_in.lora_down.weight"].shape[0] == 4
    # kohya's header metadata
    # alpha is a float setting: written as kohya writes the float from an exported config
    assert meta["ss_network_dim"] == "4" and meta["ss_network_alpha"] == "2.0"
    assert meta["ss_training_comment"] == "trigger: mychar"
    assert meta["ss_steps"] == "4" and meta["ss_base_model_version"] == "sd_v1"
    assert json.loads(meta["ss_dataset_dirs"]) == {"2_mychar": {"n_repeats": 2,
                                                                "img_count": 3}}
    freq = json.loads(meta["ss_tag_frequency"])["2_mychar"]
    assert freq["mychar"] == 3 and freq["sky"] == 1
    buckets = json.loads(meta["ss_bucket_info"])["buckets"]
    assert sum(b["count"] for b in buckets.values()) == 6
    assert len(meta["sshs_model_hash"]) == 64 and len(meta["sshs_legacy_hash"]) == 8
    assert meta["modelspec.architecture"] == "stable-diffusion-v1/lora"
    # the events stream
    ev = events(run_dir)
    kinds = [e["type"] for e in ev]
    assert kinds[0] == "start" and kinds[-1] == "end" and kinds.count("step") == 4
    assert ev[-1]["status"] == "done" and ev[0]["total_steps"] == 4
    step = next(e for e in ev if e["type"] == "step")
    assert set(step) >= {"step", "total_steps", "epoch", "loss", "avg_loss", "lr", "it_per_s",
                         "samples_per_s", "eta_s", "vram_gb", "t"}
    assert (run_dir / "train.log").read_text().count("saved") >= 2
    assert_diffusers_reproduces(run_dir)


def test_locon_unet_only_covers_278_modules_with_conv_alpha(tmp_path):
    make_dataset(tmp_path, images=2)
    cfg = write_config(tmp_path, general__max_steps=2, general__train="unet",
                       network__type="locon", network__conv_dim=2, network__conv_alpha=1,
                       saving__save_state=True, general__unet_lr=1e-2)
    run_dir = tmp_path / "out" / "r"
    assert run(cfg, run_dir) == exit_codes.DONE
    tensors, meta = read_lora(run_dir / "tiny.safetensors")
    alphas = {k: float(v) for k, v in tensors.items() if k.endswith(".alpha")}
    assert len(alphas) == 278 and all(k.startswith("lora_unet_") for k in alphas)
    conv1 = "lora_unet_down_blocks_0_resnets_0_conv1"
    assert alphas[f"{conv1}.alpha"] == 1.0 and tensors[f"{conv1}.lora_down.weight"].shape[0] == 2
    short = "lora_unet_down_blocks_1_resnets_0_conv_shortcut"
    assert alphas[f"{short}.alpha"] == 2.0 and tensors[f"{short}.lora_down.weight"].shape[0] == 4
    assert json.loads(meta["ss_network_args"]) == {"conv_dim": "2", "conv_alpha": "1.0"}
    assert_diffusers_reproduces(run_dir)


def test_loss_goes_down_when_overfitting_one_image(tmp_path):
    make_dataset(tmp_path, images=1, repeats=40)
    cfg = write_config(tmp_path, general__batch_size=4, general__epochs=2,
                       general__train="unet", general__unet_lr=1e-2, network__type="locon",
                       network__dim=8, network__alpha=8, network__conv_dim=8,
                       network__conv_alpha=8, data__shuffle_caption=False)
    run_dir = tmp_path / "out" / "r"
    assert run(cfg, run_dir) == exit_codes.DONE
    losses = [e["loss"] for e in events(run_dir) if e["type"] == "step"]
    assert len(losses) == 20
    first, last = sum(losses[:4]) / 4, sum(losses[-4:]) / 4
    assert last < first * 0.85, losses


def lora_tensors(path):
    return read_lora(path)[0]


def test_stop_and_resume_equal_a_straight_run_bitwise(tmp_path, monkeypatch):
    make_dataset(tmp_path)
    cfg = write_config(tmp_path, general__max_steps=8, data__flip_aug=True,
                       noise__offset=0.05, general__cache_latents="disk")
    straight = tmp_path / "out" / "straight"
    assert run(cfg, straight) == exit_codes.DONE
    # the same run, stopped by SIGTERM after step 3 (through the real signal handler)
    monkeypatch.setenv("LORABAKE_TEST_SIGTERM_AT_STEP", "3")
    part = tmp_path / "out" / "part"
    assert run(cfg, part) == exit_codes.STOPPED
    ev = events(part)
    assert ev[-1]["type"] == "end" and ev[-1]["status"] == "stopped"
    assert "SIGTERM" in ev[-1]["message"]
    assert (part / "state" / "progress.json").is_file()
    assert (part / "tiny-step00000003.safetensors").is_file()
    assert not (part / "tiny.safetensors").exists()
    progress = json.loads((part / "state" / "progress.json").read_text())
    assert progress["step"] == 3
    monkeypatch.delenv("LORABAKE_TEST_SIGTERM_AT_STEP")
    # a run folder is never reused by a fresh start
    assert run(cfg, part) == exit_codes.CONFIG_ERROR
    assert train_main(["--resume", str(part)]) == exit_codes.DONE
    ev = events(part)
    starts = [e for e in ev if e["type"] == "start"]
    assert [s["step"] for s in starts] == [0, 3] and starts[1]["resumed"]
    steps = [e["step"] for e in ev if e["type"] == "step"]
    assert steps == [1, 2, 3, 4, 5, 6, 7, 8]
    a, b = lora_tensors(straight / "tiny.safetensors"), lora_tensors(part / "tiny.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    straight_losses = [e["loss"] for e in events(straight) if e["type"] == "step"]
    assert [e["loss"] for e in ev if e["type"] == "step"] == straight_losses
    assert_a_finished_run_is_not_resumed(part)


def assert_a_finished_run_is_not_resumed(run_dir) -> None:
    """`--resume` of a finished run exits 2 with one line, and trains nothing: the trainer's
    and `lorabake train`'s (the state it could resume from is still there)."""
    import contextlib
    import io

    from lorabake_tui.cli import main as cli_main

    assert RunFolder(run_dir).has_state()
    before = RunFolder(run_dir).events.read_bytes()
    for resume in (lambda: train_main(["--resume", str(run_dir)]),
                   lambda: cli_main(["train", "--resume", str(run_dir)])):
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            assert resume() == exit_codes.CONFIG_ERROR
        assert err.getvalue().strip() == (
            f"lorabake train: {run_dir}: this run already finished (done); nothing to resume "
            f"(train again in a new run folder: lorabake train {run_dir / 'config.toml'})")
    assert RunFolder(run_dir).events.read_bytes() == before  # not a step trained again


def test_nan_loss_stops_and_keeps_the_last_good_save(tmp_path, monkeypatch):
    make_dataset(tmp_path, images=2)  # 2 images x 2 repeats / batch 2 = 2 steps per epoch
    cfg = write_config(tmp_path, general__epochs=3)
    monkeypatch.setenv("LORABAKE_TEST_NAN_AT_STEP", "4")
    run_dir = tmp_path / "out" / "r"
    assert run(cfg, run_dir) == exit_codes.NON_FINITE_LOSS
    ev = events(run_dir)
    assert ev[-1]["status"] == "failed" and "nan" in ev[-1]["message"].lower()
    assert any(e["type"] == "error" for e in ev)
    assert [p.name for p in run_dir.glob("*.safetensors")] == ["tiny-000001.safetensors"]
    tensors, meta = read_lora(run_dir / "tiny-000001.safetensors")
    assert meta["ss_epoch"] == "1"
    assert all(torch.isfinite(t).all() for t in tensors.values())


def test_config_errors_exit_2_and_write_nothing(tmp_path, capsys):
    make_dataset(tmp_path, images=1)
    cfg = write_config(tmp_path, network__type="dylora", network__dim=6)
    assert run(cfg, tmp_path / "out" / "r") == exit_codes.CONFIG_ERROR
    err = capsys.readouterr().err
    assert "divisible by dylora_unit" in err and re.search(r"cfg\.toml:\d+: ", err)
    cfg = write_config(tmp_path, optimizer__learning_rate=-1.0)
    assert run(cfg, tmp_path / "out" / "r") == exit_codes.CONFIG_ERROR
    assert "optimizer.learning_rate" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_keep_last_and_reg_images_with_prior_loss(tmp_path):
    make_dataset(tmp_path, images=2, repeats=1, reg=2)
    cfg = write_config(tmp_path, general__epochs=4, saving__keep_last=2,
                       data__reg_dir="reg", data__prior_loss_weight=0.5)
    run_dir = tmp_path / "out" / "r"
    assert run(cfg, run_dir) == exit_codes.DONE
    assert sorted(p.name for p in run_dir.glob("*.safetensors")) == [
        "tiny-000002.safetensors", "tiny-000003.safetensors", "tiny.safetensors"]
    start = events(run_dir)[0]
    assert start["train_samples"] == 2 and start["reg_samples"] == 2
    assert start["total_steps"] == 8


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX only")
def test_lorabake_train_cli_runs_the_trainer(tmp_path):
    from lorabake_tui.cli import main as cli_main

    make_dataset(tmp_path, images=1)
    cfg = write_config(tmp_path, general__max_steps=1)
    assert cli_main(["train", str(cfg), "--run-dir", str(tmp_path / "out" / "r")]) == 0
    assert (tmp_path / "out" / "r" / "tiny.safetensors").is_file()


def test_out_of_memory_exits_4_with_advice(tmp_path, monkeypatch):
    make_dataset(tmp_path, images=2)
    monkeypatch.setenv("LORABAKE_TEST_OOM_AT_STEP", "1")
    run_dir = tmp_path / "out" / "r"
    assert run(write_config(tmp_path), run_dir) == exit_codes.OUT_OF_MEMORY
    end = events(run_dir)[-1]
    assert end["status"] == "failed" and "batch size" in end["message"]


def test_sample_images_every_epoch(tmp_path):
    make_dataset(tmp_path, images=1, repeats=2)
    cfg = write_config(tmp_path, general__epochs=1, sampling__every_n_epochs=1,
                       sampling__steps=2, sampling__prompts=["mychar, smile --w 64 --h 64"])
    run_dir = tmp_path / "out" / "r"
    assert run(cfg, run_dir) == exit_codes.DONE
    sample = next(e for e in events(run_dir) if e["type"] == "sample")
    from PIL import Image

    [path] = sample["paths"]
    assert Image.open(path).size == (64, 64)


def test_two_process_cpu_ddp_gives_identical_weights(tmp_path):
    import socket
    import subprocess
    import sys

    make_dataset(tmp_path, images=4)
    cfg = write_config(tmp_path, general__max_steps=3)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, ACCELERATE_USE_CPU="true", OMP_NUM_THREADS="1",
               LORABAKE_TEST_RANK_CHECKSUMS="1")
    run_dir = tmp_path / "out" / "r"
    accelerate = [sys.executable, "-m", "accelerate.commands.launch"]
    proc = subprocess.run([*accelerate, "--multi_gpu", "--num_processes", "2",
                           "--main_process_port", str(port), "-m", "lorabake_tui.trainer",
                           str(cfg), "--run-dir", str(run_dir)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    sums = [(run_dir / f"rank{r}.sha256").read_text() for r in (0, 1)]
    assert sums[0] == sums[1]
    start = events(run_dir)[0]
    assert start["processes"] == 2 and start["batches_per_epoch"] == 2
    assert [e["type"] for e in events(run_dir)].count("start") == 1  # only rank 0 writes


OPTIMIZER_CLASSES = {"AdamW": "torch.optim.adamw.AdamW", "Prodigy": "prodigyopt.prodigy.Prodigy",
                     "DAdaptAdam": "dadaptation.dadapt_adam.DAdaptAdam"}


@pytest.mark.parametrize("variant", [
    # optimizer, what is trained, scheduler, precision, checkpointing, tokens
    ("Prodigy", "text_encoder", "cosine", "bf16", True, 225),
    ("DAdaptAdam", "unet", "cosine_with_restarts", "no", False, 150),
    ("AdamW", "both", "cosine_annealing_warm_restarts", "no", True, 75),
])
def test_optimizers_targets_precisions_and_token_lengths(tmp_path, variant):
    opt, what, sched, mp, gc, tokens = variant
    make_dataset(tmp_path, images=2)
    cfg = write_config(tmp_path, general__max_steps=2, general__train=what,
                       optimizer__type=opt, optimizer__scheduler=sched,
                       optimizer__learning_rate=1.0 if opt != "AdamW" else 1e-3,
                       optimizer__scheduler_cycles=2, optimizer__warmup_ratio=0.5,
                       optimizer__min_snr_gamma=5.0, optimizer__scale_weight_norms=0.0
                       if opt == "Prodigy" else 1.0, noise__multires_iterations=4,
                       general__mixed_precision=mp, general__gradient_checkpointing=gc,
                       general__max_token_length=tokens, network__dropout=0.1)
    run_dir = tmp_path / "out" / "r"
    assert run(cfg, run_dir) == exit_codes.DONE
    tensors, meta = read_lora(run_dir / "tiny.safetensors")
    unet = sum(k.startswith("lora_unet_") and k.endswith(".alpha") for k in tensors)
    te = sum(k.startswith("lora_te_") and k.endswith(".alpha") for k in tensors)
    assert (unet, te) == {"unet": (192, 0), "text_encoder": (0, 72), "both": (192, 72)}[what]
    # kohya's form: the optimizer's class, then the arguments the kohya export passes it
    assert meta["ss_optimizer"].startswith(OPTIMIZER_CLASSES[opt] + "(weight_decay=0.01,"
                                           "betas=(0.9, 0.999)")
    assert meta["ss_min_snr_gamma"] == "5.0"
    steps = [e for e in events(run_dir) if e["type"] == "step"]
    assert len(steps) == 2 and all(math.isfinite(e["loss"]) for e in steps)
    assert len(steps[0]["lr"]) == (2 if what == "both" else 1)


def test_fp16_without_a_gpu_is_a_config_error(tmp_path, capsys, monkeypatch):
    if torch.cuda.is_available():
        pytest.skip("has a GPU")
    make_dataset(tmp_path, images=1)
    run_dir = tmp_path / "out" / "r"
    cfg = write_config(tmp_path, general__mixed_precision="fp16")
    # the check refuses it before anything starts, as `config check` does here
    assert run(cfg, run_dir) == exit_codes.CONFIG_ERROR
    assert "fp16 needs an NVIDIA GPU" in capsys.readouterr().err
    assert not run_dir.exists()
    # where a driver answers but torch sees no GPU, the trainer itself refuses it
    from lorabake_tui.core.config import check

    monkeypatch.setattr(check, "gpu_visible", lambda: True)
    assert run(cfg, run_dir) == exit_codes.CONFIG_ERROR
    assert "needs an NVIDIA GPU" in events(run_dir)[-1]["message"]


def test_a_few_steps_on_the_demo_dataset_with_its_config(tmp_path):
    from lorabake_tui.core.config.file import set_value_in_text
    from lorabake_tui.demo.project import ensure_demo

    root, _ = ensure_demo(tmp_path / "demo")
    cfg = root / ".lorabake" / "training.toml"
    text = set_value_in_text(cfg.read_text(), "general", "max_steps", 2)
    text = set_value_in_text(text, "general", "cache_latents", "none")
    cfg.write_text(text)
    run_dir = tmp_path / "run"
    assert run(cfg, run_dir) == exit_codes.DONE
    tensors, meta = read_lora(run_dir / "demo.safetensors")
    assert sum(k.endswith(".alpha") for k in tensors) == 192 + 72
    dirs = json.loads(meta["ss_dataset_dirs"])
    assert len(dirs) >= 3 and all(name[0].isdigit() for name in dirs)  # misc/ is skipped
    assert meta["ss_training_comment"] == "trigger: demochar"
