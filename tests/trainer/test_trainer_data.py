"""The trainer's data side: kohya batching from the core's buckets, subsets, captions, the
latent cache and its invalidation, and saves that survive a full disk."""

from __future__ import annotations

import errno
import os

import pytest

torch = pytest.importorskip("torch")

from lorabake_tui.core.base.errors import LorabakeError  # noqa: E402
from lorabake_tui.core.config.schema import Subset, TrainingSettings  # noqa: E402
from lorabake_tui.core.dataset.scan import scan_dataset  # noqa: E402
from lorabake_tui.core.project.plan import plan_training  # noqa: E402
from lorabake_tui.trainer.data import epoch_batches, load_train_data, shard  # noqa: E402

from ..support.train_fixtures import make_dataset  # noqa: E402


def load(root, subsets=(), reg=None):
    """The trainer's data for the core's plan (64 px buckets, batch 2); the plan's first
    error is raised, as the trainer refuses it."""
    s = TrainingSettings().replace("buckets", resolution=64, min=64, max=128, step=64)
    s = s.replace("general", batch_size=2).replace(
        "data", train_dir=root / "data", subsets=tuple(
            Subset(concept, repeats=repeats, index=i)
            for i, (concept, repeats) in enumerate(subsets)))
    plan = plan_training(s, scan_dataset(root / "data", reg, caption_ext=".txt"))
    errors = [f for f in plan.findings if f.is_error]
    if errors:
        raise LorabakeError(errors[0].message)
    return load_train_data(plan)


def test_batches_follow_kohya_and_never_mix_buckets(tmp_path):
    make_dataset(tmp_path, images=6, repeats=3)
    data = load(tmp_path)
    batches = epoch_batches(data, 1, 0)
    assert len(batches) == data.batches_per_epoch
    assert sum(len(b) for b in batches) == 18  # 6 images x 3 repeats
    for b in batches:
        assert len({data.samples[i].bucket for i in b}) == 1
    counts = {i: sum(b.count(i) for b in batches) for i in range(6)}
    assert set(counts.values()) == {3}
    assert epoch_batches(data, 1, 0) == batches  # (seed, epoch) decides the order
    assert epoch_batches(data, 1, 1) != batches
    halves = [shard(batches, r, 2) for r in (0, 1)]
    assert len(halves[0]) == len(halves[1]) == -(-len(batches) // 2)


def test_subsets_pick_folders_and_override_repeats(tmp_path):
    make_dataset(tmp_path, images=2, repeats=3)
    data = load(tmp_path, [("mychar", 5)])
    assert data.num_train_images == 10 and len(data.samples) == 2
    assert {(s.folder, s.repeats) for s in data.samples} == {("3_mychar", 5)}
    assert load(tmp_path, [("mychar", None)]).num_train_images == 6  # the folder's 3
    with pytest.raises(LorabakeError, match="no training folder holds the concept 'other'"):
        load(tmp_path, [("other", None)])


def test_a_missing_caption_falls_back_to_the_class_token_and_bad_bytes_are_named(tmp_path):
    root = make_dataset(tmp_path, images=2)
    (root / "2_mychar" / "img0.txt").unlink()
    data = load(tmp_path)
    assert sorted(s.caption for s in data.samples)[0] == "mychar"
    (root / "2_mychar" / "img1.txt").write_bytes(b"caf\xe9, smile\n")
    with pytest.raises(LorabakeError, match=r"cannot be read as UTF-8, e\.g\. 2_mychar/img1"):
        load(tmp_path)


def test_latent_cache_hits_and_misses_when_image_bucket_or_vae_change(tmp_path):
    from lorabake_tui.trainer.base_model import load_base_model
    from lorabake_tui.trainer.latents import LatentCache, cache_key

    make_dataset(tmp_path, images=2)
    data = load(tmp_path)
    vae = load_base_model("builtin:tiny-sd15").vae
    cdir = tmp_path / "cache"
    first = LatentCache(vae, "vae-a", "disk", cdir)
    first.fill(data.samples, (False, True))
    assert (first.misses, first.hits) == (4, 0)
    again = LatentCache(vae, "vae-a", "disk", cdir)
    again.fill(data.samples, (False, True))
    assert (again.misses, again.hits) == (0, 4)
    s0 = data.samples[0]
    assert torch.equal(again.get(0, s0, False), first.get(0, s0, False))
    assert not torch.equal(first.get(0, s0, False), first.get(0, s0, True))
    # another VAE, another bucket, or a changed image: a miss, never a stale latent
    assert cache_key(s0, "vae-b", False) != cache_key(s0, "vae-a", False)
    import dataclasses

    moved = dataclasses.replace(s0, bucket=(128, 64))
    assert cache_key(moved, "vae-a", False) != cache_key(s0, "vae-a", False)
    st = s0.path.stat()
    os.utime(s0.path, ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000))
    third = LatentCache(vae, "vae-a", "disk", cdir)
    third.fill(data.samples, (False,))
    assert (third.misses, third.hits) == (1, 1)


def test_a_full_disk_leaves_the_previous_lora_and_state_intact(tmp_path, monkeypatch):
    from lorabake_tui.trainer import saving, state

    path = tmp_path / "x.safetensors"
    saving.write_lora(path, {"a.alpha": torch.tensor(1.0)}, {"ss_steps": "1"})
    before = path.read_bytes()
    real_fdopen = os.fdopen

    class Full:
        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fdopen", lambda fd, *a, **k: Full(real_fdopen(fd, *a, **k)))
    with pytest.raises(OSError, match="No space left"):
        saving.write_lora(path, {"a.alpha": torch.tensor(2.0)}, {"ss_steps": "2"})
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["x.safetensors"]
    # state: a failed save leaves the previous state whole and no temp folder behind
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))])
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    prog = state.Progress(1, 0, 1, 0, "s", 0.0, 10, 1)
    state.save_state(tmp_path, prog, adapters={}, optimizer=opt, scheduler=sched)

    def boom(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(state, "_save_torch", boom)
    prog.step = 2
    with pytest.raises(OSError):
        state.save_state(tmp_path, prog, adapters={}, optimizer=opt, scheduler=sched)
    monkeypatch.undo()
    assert state.read_progress(state.find_state(tmp_path)).step == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state", "x.safetensors"]
