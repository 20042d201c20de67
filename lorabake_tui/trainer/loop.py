"""The training run, top to bottom: load, prepare data and network, loop, save.

Reproducibility: every step reseeds the RNGs from (seed, step, rank) and each epoch's batch
order depends only on (seed, epoch), so a run stopped and resumed from its saved state
continues exactly as if it had never stopped.
"""

from __future__ import annotations

import os
import random
import signal
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from ..core.base.atomic import atomic_write_text
from ..core.base.errors import LorabakeError
from ..core.buckets.assign import BucketSettings
from ..core.captions.processing import process_caption
from ..core.config.file import with_absolute_paths
from ..core.dataset.steps import run_steps, total_steps
from ..core.run import exit_codes
from ..core.run.events import STATE_SAVE, EndStatus, EventType
from ..core.run.folder import CONFIG_SNAPSHOT, final_lora_name, rank_checksum_name
from .data import TrainData, epoch_batches, load_pixels, load_train_data, shard
from .formulas import max_norm_, min_snr_weight, offset_noise, pyramid_noise
from .latents import LatentCache, cache_dir_for, encode_pixels
from .metadata import training_metadata
from .network import (
    Network,
    adapter_state,
    attach,
    kohya_state,
    load_adapter_state,
    lora_configs,
    norm_pairs,
    trainable,
)
from .optim import build_optimizer, build_scheduler, current_lrs, param_groups
from .run_config import RunConfig
from .runlog import RunLog
from .saving import epoch_file, prune_epoch_files, step_file, write_lora
from .state import Progress, find_state, load_adapters, load_into, read_progress, save_state
from .text import encode, tokenize

SAVE_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "float": torch.float32}


class NonFiniteLoss(Exception):
    pass


@dataclass
class StopFlag:
    """Set by SIGTERM/SIGINT; the loop finishes its step, saves and exits 'stopped'."""

    requested: bool = False
    signal_name: str = ""

    def install(self) -> dict:
        """Returns the previous handlers (restore them when the run ends in-process)."""
        def handler(signum, _frame):
            self.requested = True
            self.signal_name = signal.Signals(signum).name

        return {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}


@dataclass
class Outcome:
    code: int
    message: str
    files: list[Path] = field(default_factory=list)


def _inner(wrapped, attr: str):
    """The optimizer/scheduler inside accelerate's wrapper (their state is what we save)."""
    return getattr(wrapped, attr, wrapped)


def _step_seed(seed: int, step: int, rank: int) -> int:
    return (seed * 1_000_003 + step * 7919 + rank * 104_729) % (2**63 - 1)


def _gb(n: int) -> float:
    return round(n / 2**30, 3)


class Trainer:
    def __init__(self, cfg: RunConfig, run_dir: Path, *, resume_from: Path | None = None,
                 stop: StopFlag | None = None) -> None:
        """`resume_from`: a run folder (or its state folder) to continue from."""
        self.cfg, self.run_dir, self.resume_from = cfg, Path(run_dir), resume_from
        self.stop = stop or StopFlag()
        self.files: list[Path] = []
        # test hooks (documented in the README): they drive the real code paths
        self._nan_at = int(os.environ.get("LORABAKE_TEST_NAN_AT_STEP", "0") or 0)
        self._term_at = int(os.environ.get("LORABAKE_TEST_SIGTERM_AT_STEP", "0") or 0)
        self._oom_at = int(os.environ.get("LORABAKE_TEST_OOM_AT_STEP", "0") or 0)

    # ---- set-up ------------------------------------------------------------------------
    def _accelerator(self):
        from accelerate import Accelerator
        from accelerate.utils import DistributedDataParallelKwargs

        v = self.cfg.v
        mp = v("general.mixed_precision")
        if mp == "fp16" and not torch.cuda.is_available():
            raise LorabakeError("general.mixed_precision = \"fp16\" needs an NVIDIA GPU",
                                "use \"bf16\" or \"no\" on this machine")
        # clip skip leaves the last text-encoder layers without gradients: DDP must know
        unused = v("general.train") != "unet" and v("general.clip_skip") > 1
        kwargs = [DistributedDataParallelKwargs(find_unused_parameters=unused)]
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            # accelerate keeps process-wide state: a second run in the same process (the
            # CLI's tests, a notebook) with another precision must start from scratch
            from accelerate.state import AcceleratorState

            AcceleratorState._reset_state(reset_partial_state=True)
        return Accelerator(mixed_precision=mp, kwargs_handlers=kwargs)

    def _load(self, acc):
        from .base_model import load_base_model

        v = self.cfg.v
        weight_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(
            v("general.mixed_precision"), torch.float32)
        self.log.line(f"loading {self.cfg.base_model}")
        model = load_base_model(self.cfg.base_model, dtype=torch.float32,
                                base_dir=self.cfg.base_dir)
        for m in (model.unet, model.text_encoder):
            m.to(acc.device)
            if weight_dtype != torch.float32:
                m.to(dtype=weight_dtype)
        model.vae.to(acc.device)  # kept in fp32: fp16 VAEs give NaN latents
        model.vae.requires_grad_(False)
        model.vae.eval()
        return model, weight_dtype

    def _data(self) -> TrainData:
        v = self.cfg.v
        res = v("buckets.resolution")
        if v("buckets.enable"):
            settings = BucketSettings((res, res), v("buckets.min"), v("buckets.max"),
                                      v("buckets.step"), v("buckets.no_upscale"),
                                      v("general.batch_size"))
        else:  # one bucket: the square resolution, every image scaled to cover it
            settings = BucketSettings((res, res), res, res, res, False, v("general.batch_size"))
        return load_train_data(self.cfg.path("data.train_dir"), self.cfg.path("data.reg_dir"),
                               caption_ext=v("data.caption_extension"),
                               subsets=v("data.subsets"), buckets=settings)

    # ---- the run -----------------------------------------------------------------------
    def run(self) -> Outcome:
        try:
            acc = self._accelerator()
        except LorabakeError as exc:
            self.log = RunLog(self.run_dir)
            try:
                return self._end(exit_codes.CONFIG_ERROR, str(exc))
            finally:
                self.log.close()
        self.acc = acc
        if acc.device.type == "cpu" and "OMP_NUM_THREADS" not in os.environ:
            # torch's default (one thread per core) crawls as soon as anything else runs on
            # the machine: threads wait on each other at every op. Half the cores is robust.
            torch.set_num_threads(max(1, min(8, (os.cpu_count() or 2) // 2)))
        main = acc.is_main_process
        self.log = RunLog(self.run_dir if main else None)
        try:
            return self._run(acc)
        except NonFiniteLoss as exc:
            return self._end(exit_codes.NON_FINITE_LOSS, str(exc))
        except torch.OutOfMemoryError:
            return self._end(exit_codes.OUT_OF_MEMORY, "out of memory: lower the batch size "
                             "or the resolution, or turn on gradient checkpointing")
        except LorabakeError as exc:
            return self._end(exit_codes.CONFIG_ERROR, str(exc))
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            return self._end(exit_codes.FAILED, f"{where}{exc.strerror or exc} (the last "
                             "complete save is intact)")
        finally:
            self.log.close()

    def _end(self, code: int, message: str) -> Outcome:
        status = {exit_codes.DONE: EndStatus.DONE,
                  exit_codes.STOPPED: EndStatus.STOPPED}.get(code, EndStatus.FAILED)
        if code not in (exit_codes.DONE, exit_codes.STOPPED):
            self.log.error(message)
        else:
            self.log.line(message)
        self.log.event(EventType.END, status=status, message=message, exit_code=code)
        return Outcome(code, message, self.files)

    def _run(self, acc) -> Outcome:
        cfg, v = self.cfg, self.cfg.v
        seed = v("general.seed")
        rank, world = acc.process_index, acc.num_processes
        torch.manual_seed(seed)
        random.seed(seed)
        data = self._data()
        for line in data.left_out[:20]:
            self.log.warning(f"not trained: {line}")
        model, weight_dtype = self._load(acc)
        unet, te, vae, tok, sched = (model.unet, model.text_encoder, model.vae, model.tokenizer,
                                     model.noise_scheduler)
        what = v("general.train")
        train_unet, train_te = what in ("unet", "both"), what in ("text_encoder", "both")
        net = lora_configs(v("network.type"), v("network.dim"), v("network.alpha"),
                           v("network.conv_dim"), v("network.conv_alpha"), v("network.dropout"),
                           unet=train_unet, text_encoder=train_te)
        attach(net, unet, te)
        if v("general.attention") == "xformers":
            try:
                unet.enable_xformers_memory_efficient_attention()
            except Exception as exc:  # noqa: BLE001 - any failure means: use SDPA
                self.log.warning(f"xformers unavailable ({exc}); using PyTorch SDPA")
        if v("general.gradient_checkpointing"):
            unet.enable_gradient_checkpointing()
            if train_te:
                te.gradient_checkpointing_enable(
                    gradient_checkpointing_kwargs={"use_reentrant": False})
        unet.train(train_unet)
        te.train(train_te)

        batches_per_epoch = total_steps(1, data.batches_per_epoch, processes=world)
        total, epochs = run_steps(v("general.epochs"), data.batches_per_epoch,
                                  max_steps=v("general.max_steps") or 0, processes=world)
        warmup = round(total * v("optimizer.warmup_ratio"))
        lr = v("optimizer.learning_rate")
        groups = param_groups(trainable(unet) if train_unet else [],
                              trainable(te) if train_te else [], lr=lr,
                              unet_lr=v("general.unet_lr"), te_lr=v("general.text_encoder_lr"))
        opt = build_optimizer(v("optimizer.type"), groups, lr=lr,
                              weight_decay=v("optimizer.weight_decay"),
                              betas=v("optimizer.betas"), d_coef=v("optimizer.d_coef"),
                              decouple=v("optimizer.decouple"),
                              use_bias_correction=v("optimizer.use_bias_correction"),
                              safeguard_warmup=v("optimizer.safeguard_warmup"),
                              device=acc.device)
        # a prepared scheduler steps once per process on each optimizer step
        lr_sched = build_scheduler(v("optimizer.scheduler"), opt, total_steps=total * world,
                                   warmup_steps=warmup * world,
                                   cycles=v("optimizer.scheduler_cycles"))
        if train_unet:
            unet = acc.prepare(unet)
        if train_te:
            te = acc.prepare(te)
        opt, lr_sched = acc.prepare(opt, lr_sched)
        raw_unet, raw_te = acc.unwrap_model(unet), acc.unwrap_model(te)

        progress = Progress(step=0, epoch=0, batch=0, seed=seed,
                            session_id=uuid.uuid4().hex, started_at=time.time(),
                            total_steps=total, world_size=world)
        if self.resume_from is not None:
            progress = self._restore(progress, raw_unet, raw_te, net, opt, lr_sched, acc)
        self._session_id, self._started_at = progress.session_id, progress.started_at

        rules = cfg.caption_rules()
        flip_aug = v("data.flip_aug")
        random_crop = v("data.random_crop")
        cache_mode = v("general.cache_latents")
        latents = None
        if cache_mode != "none":
            latents = LatentCache(vae, model.vae_id, cache_mode,
                                  cache_dir_for(cfg.path("data.train_dir")))
            self.log.line(f"caching latents ({cache_mode}) for {len(data.samples)} image(s)")
            last = [0.0]

            def tick(done: int, n: int) -> None:
                if time.monotonic() - last[0] > 5 or done == n:
                    last[0] = time.monotonic()
                    self.log.line(f"latents {done}/{n}")

            latents.fill(data.samples, (False, True) if flip_aug else (False,), tick,
                         lambda: self.stop.requested)
            if latents.misses:
                self.log.line(f"latents: {latents.misses} encoded, {latents.hits} from disk")
            if acc.device.type == "cuda" and not v("sampling.every_n_epochs"):
                vae.to("cpu")  # no longer needed on the GPU
        te_cache: dict[int, torch.Tensor] = {}
        cache_te = not train_te and rules.deterministic
        scaling = vae.config.scaling_factor
        prediction = sched.config.prediction_type
        alphas = sched.alphas_cumprod
        max_tokens = v("general.max_token_length")
        clip_skip = v("general.clip_skip")
        prior = v("data.prior_loss_weight")
        params = [p for g in opt.param_groups for p in g["params"]]

        self.log.event(EventType.START, **self._start_summary(data, progress, total, epochs,
                                                                batches_per_epoch, net, model))
        self.log.line(f"{len(data.samples)} image(s), {data.num_train_images} training and "
                      f"{data.num_reg_images} regularization sample(s) per epoch, "
                      f"{data.batches_per_epoch} batch(es) per epoch, {total} steps")
        meta_base = dict(data=data, net=net, model=model, total=total, epochs=epochs,
                         batches=batches_per_epoch)
        step, t_start = progress.step, time.monotonic()
        steps_this_session = 0
        losses = list(progress.epoch_losses)

        for epoch in range(progress.epoch, epochs):
            mine = shard(epoch_batches(data, seed, epoch), rank, world)
            start_batch = progress.batch if epoch == progress.epoch else 0
            if start_batch == 0:
                losses = []
            for b in range(start_batch, len(mine)):
                if step >= total:
                    break
                s_seed = _step_seed(seed, step, rank)
                torch.manual_seed(s_seed)
                rng = random.Random(s_seed)
                idx = mine[b]
                flips = [flip_aug and rng.random() < 0.5 for _ in idx]
                with torch.no_grad():
                    if latents is not None:
                        lat = torch.stack([latents.get(i, data.samples[i], f)
                                           for i, f in zip(idx, flips, strict=True)])
                    else:
                        pix = torch.stack([torch.from_numpy(load_pixels(
                            data.samples[i], flip=f, crop_rng=rng if random_crop else None))
                            for i, f in zip(idx, flips, strict=True)])
                        lat = encode_pixels(vae, pix)
                    lat = lat.to(acc.device, dtype=torch.float32) * scaling
                captions = [process_caption(data.samples[i].caption, rules, rng,
                                            epoch=epoch + 1, step=step, max_train_steps=total)
                            for i in idx]
                noise = torch.randn_like(lat)
                if v("noise.offset"):
                    noise = offset_noise(noise, v("noise.offset"))
                if v("noise.multires_iterations"):
                    noise = pyramid_noise(noise, v("noise.multires_iterations"),
                                          v("noise.multires_discount"))
                t = torch.randint(0, sched.config.num_train_timesteps, (lat.shape[0],),
                                  device=acc.device)
                noisy = sched.add_noise(lat, noise, t)
                with acc.autocast():
                    if cache_te:
                        states = torch.stack([self._te_cached(te_cache, i, data, tok, te,
                                                              max_tokens, clip_skip)
                                              for i in idx]).to(acc.device)
                    else:
                        ids = tokenize(tok, captions, max_tokens)
                        with torch.set_grad_enabled(train_te):
                            states = encode(te, ids, clip_skip)
                    pred = unet(noisy.to(weight_dtype), t, states.to(weight_dtype)).sample
                target = sched.get_velocity(lat, noise, t) if prediction == "v_prediction" \
                    else noise
                per = F.mse_loss(pred.float(), target.float(), reduction="none")
                per = per.mean(dim=[1, 2, 3])
                weights = torch.tensor([prior if data.samples[i].is_reg else 1.0 for i in idx],
                                       device=per.device)
                per = per * weights
                if v("optimizer.min_snr_gamma"):
                    per = per * min_snr_weight(alphas, t.cpu(), v("optimizer.min_snr_gamma"),
                                               v_prediction=prediction == "v_prediction"
                                               ).to(per.device)
                loss = per.mean()
                if self._oom_at and step + 1 == self._oom_at:
                    raise torch.OutOfMemoryError("injected by LORABAKE_TEST_OOM_AT_STEP")
                if self._nan_at and step + 1 == self._nan_at:
                    loss = loss * float("nan")
                bad = not torch.isfinite(loss.detach()).item()
                if self._any(acc, bad):
                    raise NonFiniteLoss(
                        f"loss became {loss.item()} at step {step + 1}: stopped; the last "
                        "good save is kept (try bf16, a lower learning rate, or fp32)")
                acc.backward(loss)
                if v("optimizer.max_grad_norm") and acc.sync_gradients:
                    acc.clip_grad_norm_(params, v("optimizer.max_grad_norm"))
                opt.step()
                lr_sched.step()
                opt.zero_grad(set_to_none=True)
                if v("optimizer.scale_weight_norms"):
                    max_norm_(norm_pairs(raw_unet if train_unet else None,
                                         raw_te if train_te else None),
                              v("optimizer.scale_weight_norms"))
                step += 1
                steps_this_session += 1
                loss_v = float(loss.detach().item())
                losses.append(loss_v)
                progress.step, progress.epoch, progress.batch = step, epoch, b + 1
                progress.epoch_losses = losses
                self._step_event(step, total, epoch, loss_v, losses, opt, t_start,
                                 steps_this_session, lat.shape[0] * world, acc)
                if self._term_at and step == self._term_at:
                    os.kill(os.getpid(), signal.SIGTERM)
                if self._any(acc, self.stop.requested):
                    return self._stopped(progress, raw_unet, raw_te, net, opt, lr_sched, acc,
                                         meta_base)
                every_steps = v("saving.state_every_n_steps")
                if every_steps and step % every_steps == 0 and step < total:
                    self._save_state(progress, raw_unet, raw_te, net, opt, lr_sched, acc)
            # end of epoch
            progress.epoch, progress.batch = epoch + 1, 0
            progress.epoch_losses = []
            avg = sum(losses) / len(losses) if losses else None
            self.log.event(EventType.EPOCH, epoch=epoch + 1, epochs=epochs, step=step,
                           avg_loss=avg)
            self.log.line(f"epoch {epoch + 1}/{epochs} done, average loss "
                          f"{avg if avg is None else round(avg, 5)}")
            final = step >= total or epoch + 1 == epochs
            if not final and (epoch + 1) % v("saving.every_n_epochs") == 0:
                self._save_lora(
                    epoch_file(cfg.output_name, epoch + 1), raw_unet, raw_te, net, acc,
                    step=step, epoch=epoch + 1, **meta_base)
                if acc.is_main_process:
                    for p in prune_epoch_files(self.run_dir, cfg.output_name,
                                               v("saving.keep_last")):
                        self.log.line(f"removed {p.name} (keep_last)")
                if v("saving.save_state"):
                    self._save_state(progress, raw_unet, raw_te, net, opt, lr_sched, acc)
            sample_every = v("sampling.every_n_epochs")
            if sample_every and (epoch + 1) % sample_every == 0 and v("sampling.prompts"):
                self._sample(model, raw_unet, raw_te, epoch + 1, acc)
            if step >= total:
                break
        final = self._save_lora(final_lora_name(cfg.output_name), raw_unet, raw_te, net, acc,
                                step=step, epoch=progress.epoch, finished=True, **meta_base)
        if v("saving.save_state"):
            self._save_state(progress, raw_unet, raw_te, net, opt, lr_sched, acc)
        self._rank_checksum(raw_unet, raw_te, acc)
        return self._end(exit_codes.DONE, f"done: {final}")

    # ---- pieces of the loop ------------------------------------------------------------
    @staticmethod
    def _any(acc, flag: bool) -> bool:
        """The same decision on every process (stop, NaN): one tiny all-reduce under DDP."""
        if acc.num_processes == 1:
            return bool(flag)
        t = torch.tensor([1.0 if flag else 0.0], device=acc.device)
        return bool(acc.reduce(t, reduction="sum").item() > 0)

    def _te_cached(self, cache, i, data, tok, te, max_tokens, clip_skip):
        hit = cache.get(i)
        if hit is None:
            with torch.no_grad():
                hit = encode(te, tokenize(tok, [data.samples[i].caption], max_tokens),
                             clip_skip)[0].cpu()
            cache[i] = hit
        return hit

    def _step_event(self, step, total, epoch, loss, losses, opt, t_start, n_session,
                    samples_per_step, acc) -> None:
        if not acc.is_main_process:
            return
        elapsed = max(1e-9, time.monotonic() - t_start)
        it_s = n_session / elapsed
        vram = None
        if acc.device.type == "cuda":
            vram = _gb(torch.cuda.max_memory_allocated(acc.device))
        window = losses[-100:]
        avg = sum(window) / len(window)
        self.log.event(EventType.STEP, step=step, total_steps=total, epoch=epoch + 1,
                       loss=loss, avg_loss=avg, lr=current_lrs(opt), it_per_s=round(it_s, 4),
                       samples_per_s=round(it_s * samples_per_step, 4),
                       eta_s=round((total - step) / it_s, 1), vram_gb=vram)
        if step == 1 or step % 10 == 0 or step == total:
            self.log.line(f"step {step}/{total} epoch {epoch + 1} loss {loss:.5f} "
                          f"avg {avg:.5f} {it_s:.2f} it/s")

    def _start_summary(self, data, progress, total, epochs, batches, net, model) -> dict:
        v = self.cfg.v
        return {
            "run_dir": str(self.run_dir), "output_name": self.cfg.output_name,
            "total_steps": total, "epochs": epochs, "batches_per_epoch": batches,
            "step": progress.step, "resumed": self.resume_from is not None,
            "images": len(data.samples),
            "train_samples": data.num_train_images, "reg_samples": data.num_reg_images,
            "batch_size": v("general.batch_size"), "processes": self.acc.num_processes,
            "device": str(self.acc.device), "mixed_precision": v("general.mixed_precision"),
            "network": net.kind, "dim": v("network.dim"), "alpha": v("network.alpha"),
            "optimizer": v("optimizer.type"), "scheduler": v("optimizer.scheduler"),
            "base_model": model.name, "buckets": {f"{w}x{h}": data.report.samples((w, h))
                                                  for w, h in sorted(data.report.buckets)},
        }

    def _metadata(self, *, data, net, model, total, epochs, batches, step, epoch,
                  finished=False) -> dict[str, str]:
        v = self.cfg.v
        res = v("buckets.resolution")
        lr = v("optimizer.learning_rate")
        return training_metadata(
            session_id=self._session_id, started_at=self._started_at,
            finished_at=time.time() if finished else None, output_name=self.cfg.output_name,
            comment=v("saving.comment"), steps=step, epoch=epoch, epochs=epochs,
            max_steps=total, learning_rate=lr, unet_lr=v("general.unet_lr") or lr,
            te_lr=v("general.text_encoder_lr") or lr, scheduler=v("optimizer.scheduler"),
            network_module="networks.lora", network_dim=v("network.dim"),
            network_alpha=v("network.alpha"), network_dropout=v("network.dropout"),
            network_args=net.args(), clip_skip=v("general.clip_skip"),
            min_snr_gamma=v("optimizer.min_snr_gamma"), noise_offset=v("noise.offset"),
            optimizer=v("optimizer.type"), resolution=(res, res),
            num_train_images=data.num_train_images, batches_per_epoch=batches,
            sd_model_name=model.name, sd_model_hash=model.legacy_hash or "",
            new_sd_model_hash=model.autov2 or "", dataset_dirs=data.dataset_dirs(),
            tag_frequency=data.tag_frequency() if v("saving.tag_occurrence") else None,
            bucket_info=data.bucket_info())

    def _save_lora(self, name: str, unet, te, network: Network, acc, **meta) -> Path:
        path = self.run_dir / name
        acc.wait_for_everyone()
        if acc.is_main_process:
            tensors = kohya_state(network, unet, te,
                                  SAVE_DTYPES[self.cfg.v("saving.precision")])
            size = write_lora(path, tensors, self._metadata(**meta))
            self.files.append(path)
            self.log.event(EventType.SAVE, path=str(path), step=meta["step"],
                           epoch=meta["epoch"], bytes=size)
            self.log.line(f"saved {path}")
        acc.wait_for_everyone()
        return path

    def _save_state(self, progress, unet, te, net, opt, sched, acc) -> None:
        acc.wait_for_everyone()
        if acc.is_main_process:
            adapters = {}
            if net.unet_config is not None:
                adapters["unet"] = adapter_state(unet)
            if net.te_config is not None:
                adapters["te"] = adapter_state(te)
            path = save_state(self.run_dir, progress, adapters=adapters,
                              optimizer=_inner(opt, "optimizer"),
                              scheduler=_inner(sched, "scheduler"), scaler=acc.scaler)
            self.log.event(EventType.SAVE, path=str(path), kind=STATE_SAVE, step=progress.step)
            self.log.line(f"state saved at step {progress.step}")
        acc.wait_for_everyone()

    def _stopped(self, progress, unet, te, net, opt, sched, acc, meta_base) -> Outcome:
        self._save_state(progress, unet, te, net, opt, sched, acc)
        path = self._save_lora(step_file(self.cfg.output_name, progress.step), unet, te, net,
                               acc, step=progress.step, epoch=progress.epoch, **meta_base)
        why = self.stop.signal_name or "a stop request"
        return self._end(exit_codes.STOPPED, f"stopped by {why} at step {progress.step}: "
                         f"state saved, {path.name} written; continue with "
                         f"`lorabake train --resume {self.run_dir}`")

    def _restore(self, progress, unet, te, net, opt, sched, acc) -> Progress:
        src = Path(self.resume_from)
        state = src if (src / "progress.json").is_file() else find_state(src)
        if state is None:
            raise LorabakeError(f"{src}: no saved state to resume from",
                                "a run saves state when stopped, or with saving.save_state")
        saved = read_progress(state)
        if saved.world_size != acc.num_processes:
            self.log.warning(f"the run was saved with {saved.world_size} process(es), now "
                             f"{acc.num_processes}: the batch order changes")
        if saved.total_steps != progress.total_steps:
            self.log.warning(f"total steps changed from {saved.total_steps} to "
                             f"{progress.total_steps} (dataset or config changed)")
        adapters = load_adapters(state)
        if net.unet_config is not None:
            load_adapter_state(unet, adapters["unet"])
        if net.te_config is not None:
            load_adapter_state(te, adapters["te"])
        load_into(state, optimizer=_inner(opt, "optimizer"),
                  scheduler=_inner(sched, "scheduler"), scaler=acc.scaler)
        self.log.line(f"resumed from {state} at step {saved.step} (epoch {saved.epoch + 1}, "
                      f"batch {saved.batch})")
        saved.total_steps = progress.total_steps
        return saved

    def _sample(self, model, unet, te, epoch: int, acc) -> None:
        if not acc.is_main_process:
            acc.wait_for_everyone()
            return
        from .sampling import sample_images

        try:
            paths = sample_images(model, unet, te, self.cfg, self.run_dir, epoch, acc.device)
        except Exception as exc:  # noqa: BLE001 - a failed preview must not end the run
            self.log.warning(f"sampling failed: {exc}")
        else:
            self.log.event(EventType.SAMPLE, epoch=epoch, paths=[str(p) for p in paths])
        acc.wait_for_everyone()

    def _rank_checksum(self, unet, te, acc) -> None:
        """Test hook: each process writes a checksum of its adapter weights (DDP test)."""
        if not os.environ.get("LORABAKE_TEST_RANK_CHECKSUMS"):
            return
        import hashlib

        h = hashlib.sha256()
        for model in (unet, te):
            for name, p in sorted(model.named_parameters()):
                if "lora_" in name:
                    h.update(p.detach().float().cpu().numpy().tobytes())
        atomic_write_text(self.run_dir / rank_checksum_name(acc.process_index), h.hexdigest())


def write_snapshot(cfg: RunConfig, run_dir: Path) -> None:
    """The config the run used, paths made absolute: resume reads it back."""
    atomic_write_text(run_dir / CONFIG_SNAPSHOT, with_absolute_paths(cfg.doc.text, cfg.base_dir))
