"""Block weights, block dims and gradient accumulation on the tiny model (real runs on CPU):
a block with LR weight 0 gets no adapter and the others train; the saved ranks and alphas are
the ones asked per block (kohya's numbering, rebuilt here independently); 2 accumulated
batches of 1 make the same first optimizer step as one batch of 2; the events count the
plan's optimizer steps."""

from __future__ import annotations

import json
import re

import pytest

torch = pytest.importorskip("torch")

from lorabake_tui.core.run import exit_codes  # noqa: E402
from lorabake_tui.core.run.event_reader import read_all_events  # noqa: E402
from lorabake_tui.core.run.folder import RunFolder  # noqa: E402
from lorabake_tui.trainer.__main__ import main as train_main  # noqa: E402
from lorabake_tui.trainer.run_config import load_run_config  # noqa: E402

from ..support.train_fixtures import make_dataset, write_config  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def run(cfg, run_dir) -> int:
    return train_main([str(cfg), "--run-dir", str(run_dir)])


def read_lora(path):
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, f.metadata()  # noqa: SIM118


def kohya_block(kohya_name: str) -> int:
    """kohya's get_block_index for SD 1.5, on the file's own module names."""
    m = re.search(r"(up|down)_blocks_(\d+)_(resnets|upsamplers|downsamplers|attentions)_(\d+)_",
                  kohya_name)
    if m:
        i, kind, j = int(m.group(2)), m.group(3), int(m.group(4))
        idx = 3 * i + (2 if kind in ("upsamplers", "downsamplers") else j)
        return 1 + idx if m.group(1) == "down" else 13 + idx
    return 12 if "mid_block_" in kohya_name else -1


def modules(tensors) -> dict[str, int]:
    """UNet module -> kohya block, from the saved file."""
    return {k[:-len(".alpha")]: kohya_block(k) for k in tensors
            if k.startswith("lora_unet_") and k.endswith(".alpha")}


def test_a_zero_weight_block_gets_no_adapter_and_the_others_train(tmp_path):
    make_dataset(tmp_path, images=2)
    # IN01-IN03 (down_blocks.0) and OUT10-OUT11 at weight 0, IN04 below the threshold,
    # OUT09 at half the rate
    down = "1,0,0,0,0.05,1,1,1,1,1,1,1"
    cfg = write_config(tmp_path, general__max_steps=3, general__train="unet",
                       general__unet_lr=1e-2, network__down_lr_weight=down,
                       network__up_lr_weight="1,1,1,1,1,1,1,1,1,0.5,0,0",
                       network__block_lr_zero_threshold=0.1, saving__save_state=True)
    run_dir = tmp_path / "out" / "r"
    assert run(cfg, run_dir) == exit_codes.DONE
    tensors, meta = read_lora(run_dir / "tiny.safetensors")
    blocks = modules(tensors)
    off = {1, 2, 3, 4, 23, 24}
    assert not [m for m, b in blocks.items() if b in off]  # kohya creates none there
    # LoRA's modules sit in the transformer blocks: IN01-02, 04-05, 07-08, M00, OUT04-11
    assert set(blocks.values()) == {5, 7, 8, 12, 16, 17, 18, 19, 20, 21, 22}
    moved = {b for m, b in blocks.items() if tensors[f"{m}.lora_up.weight"].abs().max() > 0}
    assert moved == set(blocks.values())  # lora_up starts at 0: each block has trained
    args = json.loads(meta["ss_network_args"])
    assert args["down_lr_weight"] == down and args["block_lr_zero_threshold"] == "0.1"
    # the learning rates per block, as the events report them: the UNet's rate x weight
    start = [e for e in read_all_events(RunFolder(run_dir).events) if e["type"] == "step"][0]
    assert sorted({round(lr, 8) for lr in start["lr"]}) == [5e-3, 1e-2]


def test_a_zero_weight_leaves_a_block_unchanged_where_a_full_model_trains_it(tmp_path):
    """The same run without weights trains down_blocks.0; with weight 0 its output is the
    base model's (no adapter), while a trained block still differs from the base."""
    make_dataset(tmp_path, images=2)
    common = dict(general__max_steps=2, general__train="unet", general__unet_lr=1e-2)
    full = write_config(tmp_path, "full.toml", **common)
    zero = write_config(tmp_path, "zero.toml", **common,
                        network__down_lr_weight="0,0,0,0,1,1,1,1,1,1,1,1")
    assert run(full, tmp_path / "out" / "full") == exit_codes.DONE
    assert run(zero, tmp_path / "out" / "zero") == exit_codes.DONE
    full_t = modules(read_lora(tmp_path / "out" / "full" / "tiny.safetensors")[0])
    zero_t = modules(read_lora(tmp_path / "out" / "zero" / "tiny.safetensors")[0])
    assert {b for b in full_t.values() if b <= 3} == {1, 2}  # trained without weights
    assert not {b for b in zero_t.values() if b <= 3}
    assert {m for m, b in full_t.items() if b > 3} == set(zero_t)


def test_block_dims_and_alphas_give_the_ranks_asked_in_the_saved_file(tmp_path):
    make_dataset(tmp_path, images=2)
    dims = [0] + [(b % 5) + 1 for b in range(1, 25)]
    alphas = [float(b) / 2 + 0.5 for b in range(25)]
    conv_dims = [0] + [(b % 3) + 2 for b in range(1, 25)]
    conv_dims[7] = 0  # no convolution adapters in IN07, its linear ones stay
    cfg = write_config(tmp_path, general__max_steps=1, general__train="unet",
                       network__type="locon", network__conv_dim=2, network__conv_alpha=1,
                       network__block_dims=dims, network__block_alphas=alphas,
                       network__conv_block_dims=conv_dims)
    run_dir = tmp_path / "out" / "r"
    assert run(cfg, run_dir) == exit_codes.DONE
    tensors, meta = read_lora(run_dir / "tiny.safetensors")
    blocks = modules(tensors)
    conv3x3 = re.compile(r"(_conv1|_conv2|samplers_0_conv)$")
    seen_conv = seen_linear = 0
    for m, b in blocks.items():
        down, up = tensors[f"{m}.lora_down.weight"], tensors[f"{m}.lora_up.weight"]
        alpha = float(tensors[f"{m}.alpha"])
        if conv3x3.search(m):
            seen_conv += 1
            assert (down.shape[0], up.shape[1], alpha) == (conv_dims[b], conv_dims[b], 1.0), m
        else:
            seen_linear += 1
            assert (down.shape[0], up.shape[1], alpha) == (dims[b], dims[b], alphas[b]), m
    in07 = [m for m, b in blocks.items() if b == 7]
    assert in07 and not [m for m in in07 if conv3x3.search(m)]
    assert seen_conv and seen_linear > 100
    args = json.loads(meta["ss_network_args"])
    assert args["block_dims"] == ",".join(map(str, dims))
    assert args["conv_dim"] == "2"


def step_events(run_dir):
    return [e for e in read_all_events(RunFolder(run_dir).events) if e["type"] == "step"]


def adapter(run_dir):
    from lorabake_tui.trainer.state import find_state, load_adapters

    return load_adapters(find_state(run_dir))


def grads(run_dir) -> dict:
    from lorabake_tui.trainer.state import find_state

    state = torch.load(find_state(run_dir) / "optimizer.pt", weights_only=True)["state"]
    return {i: st["exp_avg"] / 0.1 for i, st in state.items()}


def test_two_accumulated_batches_of_one_equal_one_batch_of_two(tmp_path):
    # one image, two repeats: both setups see the same two samples in their first step
    make_dataset(tmp_path, images=1, repeats=2)
    common = dict(general__max_steps=1, data__shuffle_caption=False, saving__save_state=True,
                  network__dropout=0.0, general__cache_latents="memory")
    two = write_config(tmp_path, "two.toml", general__batch_size=2, **common)
    acc = write_config(tmp_path, "acc.toml", general__batch_size=1,
                       optimizer__gradient_accumulation_steps=2, **common)
    assert run(two, tmp_path / "out" / "two") == exit_codes.DONE
    assert run(acc, tmp_path / "out" / "acc") == exit_codes.DONE
    a, b = adapter(tmp_path / "out" / "two"), adapter(tmp_path / "out" / "acc")
    moved = 0.0
    for model in ("unet", "te"):
        assert a[model].keys() == b[model].keys()
        for k in a[model]:
            assert (a[model][k] - b[model][k]).abs().max() <= 1e-5, k
            if "lora_B" in k:
                moved = max(moved, float(a[model][k].abs().max()))
    assert moved > 5e-5  # the step did change the weights (the UNet's rate is 1e-4)
    # Adam's first step is about lr x sign(gradient), so the weights alone say little:
    # compare the gradients themselves, kept in the first moment as (1 - beta1) x g
    ga, gb = grads(tmp_path / "out" / "two"), grads(tmp_path / "out" / "acc")
    assert ga.keys() == gb.keys() and len(ga) > 100
    biggest = max(float(g.abs().max()) for g in ga.values())
    assert biggest > 1e-3
    for i in ga:
        assert (ga[i] - gb[i]).abs().max() <= 1e-5 * max(1.0, biggest), i
    ea, eb = step_events(tmp_path / "out" / "two"), step_events(tmp_path / "out" / "acc")
    assert len(ea) == len(eb) == 1
    assert abs(ea[0]["loss"] - eb[0]["loss"]) <= 1e-5


def test_accumulation_steps_match_the_plan_and_the_schedule(tmp_path):
    make_dataset(tmp_path, images=5, repeats=1)
    cfg = write_config(tmp_path, general__batch_size=1, general__epochs=2,
                       optimizer__gradient_accumulation_steps=2, general__train="unet",
                       optimizer__scheduler="linear")
    plan = load_run_config(cfg).plan
    assert plan.batches_per_epoch == 5 and plan.steps_per_epoch == 3
    assert plan.total_steps == 6
    run_dir = tmp_path / "out" / "r"
    assert run(cfg, run_dir) == exit_codes.DONE
    start = [e for e in read_all_events(RunFolder(run_dir).events) if e["type"] == "start"][0]
    assert (start["total_steps"], start["batches_per_epoch"], start["steps_per_epoch"]) == \
        (6, 5, 3)
    steps = step_events(run_dir)
    assert [e["step"] for e in steps] == [1, 2, 3, 4, 5, 6]
    assert {e["total_steps"] for e in steps} == {6}
    assert [e["epoch"] for e in steps] == [1, 1, 1, 2, 2, 2]
    # the linear schedule reaches 0 after the plan's optimizer steps, not the batches
    lrs = [e["lr"][0] for e in steps]
    assert lrs[-1] == pytest.approx(0.0, abs=1e-12)
    assert lrs[0] == pytest.approx(1e-4 * 5 / 6)  # the UNet's rate, one of six steps gone
    _, meta = read_lora(run_dir / "tiny.safetensors")
    assert meta["ss_steps"] == "6" and meta["ss_max_train_steps"] == "6"


def test_stop_and_resume_with_accumulation_equal_a_straight_run(tmp_path, monkeypatch):
    # 5 images x 2 repeats, batch 2: 5 batches an epoch, 3 optimizer steps (the last of one
    # batch); the stop falls inside the first epoch
    make_dataset(tmp_path, images=5, repeats=2)
    cfg = write_config(tmp_path, general__max_steps=5, optimizer__gradient_accumulation_steps=2,
                       data__flip_aug=True, general__cache_latents="memory")
    straight = tmp_path / "out" / "straight"
    assert run(cfg, straight) == exit_codes.DONE
    monkeypatch.setenv("LORABAKE_TEST_SIGTERM_AT_STEP", "2")
    part = tmp_path / "out" / "part"
    assert run(cfg, part) == exit_codes.STOPPED
    progress = json.loads((part / "state" / "progress.json").read_text())
    assert (progress["step"], progress["batch"]) == (2, 4)  # 2 optimizer steps, 4 batches
    monkeypatch.delenv("LORABAKE_TEST_SIGTERM_AT_STEP")
    assert train_main(["--resume", str(part)]) == exit_codes.DONE
    a = read_lora(straight / "tiny.safetensors")[0]
    b = read_lora(part / "tiny.safetensors")[0]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [e["step"] for e in step_events(part)] == [1, 2, 3, 4, 5]
    assert [e["epoch"] for e in step_events(straight)] == [1, 1, 1, 2, 2]
