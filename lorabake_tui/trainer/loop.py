"""The training run, top to bottom: load, prepare data and network, loop, save.

`Trainer.run` reads like diffusers' LoRA example: set up the accelerator, the data (the
core's training plan with captions read), the model and the network, the optimizer and the
schedule; then per step: the batch's latents, the noise, the loss, the update, the events;
per epoch: saves and samples. What one step hands the next lives in one `RunState`.

Reproducibility: every step reseeds the RNGs from (seed, step, rank) and each epoch's batch
order depends only on (seed, epoch), so a run stopped and resumed from its saved state
continues exactly as if it had never stopped.
"""

from __future__ import annotations

import math
import os
import random
import signal
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..core.base.atomic import atomic_write_text
from ..core.base.errors import LorabakeError
from ..core.base.project_files import ProjectFiles
from ..core.captions.processing import CaptionRules, process_caption
from ..core.config.blocks import lr_weights
from ..core.config.blocks import network_args as block_network_args
from ..core.config.file import with_absolute_paths
from ..core.run import exit_codes
from ..core.run.events import STATE_SAVE, EndStatus, EventType
from ..core.run.folder import CONFIG_SNAPSHOT, final_lora_name, rank_checksum_name
from .blocks import block_index, layout_for
from .cpu_unet import tune_for_cpu
from .data import TrainData, epoch_batches, load_pixels, load_train_data, shard
from .formulas import max_norm_, min_snr_weight, offset_noise, pyramid_noise
from .latents import LatentCache, encode_pixels
from .metadata import RunFacts, optimizer_class, training_metadata
from .network import (
    Network,
    adapter_state,
    attach,
    is_adapter_param,
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


@dataclass(frozen=True, slots=True)
class FaultHooks:
    """Test hooks (documented in the README) that drive the real failure paths: a NaN loss,
    a SIGTERM or an out-of-memory error at a given step (0: never), and a checksum of each
    process's weights at the end (the DDP test). Read once, when the process starts."""

    nan_at: int = 0
    sigterm_at: int = 0
    oom_at: int = 0
    rank_checksums: bool = False

    @classmethod
    def from_env(cls, environ=None) -> FaultHooks:
        env = os.environ if environ is None else environ

        def step(name: str) -> int:
            try:
                return int(env.get(name, "0") or 0)
            except ValueError:
                return 0

        return cls(step("LORABAKE_TEST_NAN_AT_STEP"), step("LORABAKE_TEST_SIGTERM_AT_STEP"),
                   step("LORABAKE_TEST_OOM_AT_STEP"),
                   bool(env.get("LORABAKE_TEST_RANK_CHECKSUMS")))


@dataclass
class Outcome:
    code: int
    message: str
    files: list[Path] = field(default_factory=list)


@dataclass
class RunState:
    """What the loop carries from step to step, and what saving needs."""

    acc: Any  # accelerate.Accelerator
    data: TrainData
    net: Network
    unet: Any  # prepared (DDP-wrapped under several processes)
    te: Any
    raw_unet: Any  # the models themselves, for saving
    raw_te: Any
    vae: Any
    tokenizer: Any
    noise_scheduler: Any
    model: Any  # the loaded base model (sampling, metadata)
    opt: Any
    lr_sched: Any
    weight_dtype: torch.dtype
    train_unet: bool
    train_te: bool
    total: int  # optimizer steps of the run
    epochs: int  # epochs it starts
    steps_per_epoch: int
    progress: Progress
    latents: LatentCache | None = None
    rules: CaptionRules | None = None
    te_cache: dict[int, torch.Tensor] = field(default_factory=dict)
    cache_te: bool = False  # text-encoder states are fixed: encode each caption once
    losses: list[float] = field(default_factory=list)
    t_start: float = 0.0
    steps_this_session: int = 0

    @property
    def params(self) -> list[torch.nn.Parameter]:
        return [p for g in self.opt.param_groups for p in g["params"]]


def _inner(wrapped, attr: str):
    """The optimizer/scheduler inside accelerate's wrapper (their state is what we save)."""
    return getattr(wrapped, attr, wrapped)


def _step_seed(seed: int, step: int, rank: int) -> int:
    return (seed * 1_000_003 + step * 7919 + rank * 104_729) % (2**63 - 1)


def _noise_generators(step_seed: int) -> tuple[torch.Generator, torch.Generator]:
    """CPU generators for the step's noise and timesteps, drawn sample after sample across
    the optimizer step's batches (CPU: the same numbers on every device)."""
    return (torch.Generator().manual_seed(step_seed),
            torch.Generator().manual_seed(step_seed ^ 0x5DEECE66D))


def cpu_threads(environ) -> int | None:
    """Torch threads for a CPU run: every core this process may run on (its affinity mask,
    which containers and `taskset` narrow), or None to leave torch as it is when
    OMP_NUM_THREADS says otherwise. Measured on 2 cores: all of them is 1.6x faster per step
    than half of them on a quiet machine (bench/README.md, "compare_kohya")."""
    if environ.get("OMP_NUM_THREADS"):
        return None
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def defer_loss_read(device: torch.device) -> bool:
    """Read the losses once per optimizer step (GPU) rather than after each forward."""
    return device.type == "cuda"


def _gb(n: int) -> float:
    return round(n / 2**30, 3)


class Trainer:
    def __init__(self, cfg: RunConfig, run_dir: Path, *, resume_from: Path | None = None,
                 stop: StopFlag | None = None, hooks: FaultHooks | None = None) -> None:
        """`resume_from`: a run folder (or its state folder) to continue from."""
        self.cfg, self.s, self.run_dir = cfg, cfg.settings, Path(run_dir)
        self.resume_from = resume_from
        self.stop = stop or StopFlag()
        self.hooks = hooks or FaultHooks()
        self.files: list[Path] = []
        self.tb = None  # tb.TensorBoard when logging.tensorboard is on (main process)

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
        # process-wide torch settings, put back when the run ends (a run inside a test or a
        # notebook leaves its process as it found it)
        threads_before, tf32_before = torch.get_num_threads(), torch.backends.cuda.matmul.allow_tf32
        if acc.device.type == "cpu":
            threads = cpu_threads(os.environ)
            if threads:
                torch.set_num_threads(threads)
        elif acc.device.type == "cuda":
            # TF32 tensor cores (Ampere and newer) for the fp32 matmuls (cuDNN's convolutions
            # use them already by default); half-precision runs barely have any
            torch.backends.cuda.matmul.allow_tf32 = True
        self.log = RunLog(self.run_dir if acc.is_main_process else None)
        try:
            return self._train(acc)
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
            if self.tb is not None:
                self.tb.close()
            self.log.close()
            torch.set_num_threads(threads_before)
            torch.backends.cuda.matmul.allow_tf32 = tf32_before

    def _train(self, acc) -> Outcome:
        s = self.s
        seed = s.general.seed
        torch.manual_seed(seed)
        random.seed(seed)
        st = self._prepare(acc, seed)
        self.log.event(EventType.START, **self._start_summary(st))
        if s.logging.tensorboard and acc.is_main_process:
            from .tb import TensorBoard

            self.tb = TensorBoard.open(self.run_dir, self.log.warning)
        d = st.data
        self.log.line(f"{len(d.samples)} image(s), {d.num_train_images} training and "
                      f"{d.num_reg_images} regularization sample(s) per epoch, "
                      f"{d.batches_per_epoch} batch(es) per epoch, {st.total} steps")
        rank, world = acc.process_index, acc.num_processes
        accum = self.cfg.plan.grad_accum
        # on a GPU the losses are read once per optimizer step, after the backward passes are
        # queued: a read after each forward would stall the queue between forward and backward
        defer = defer_loss_read(acc.device)
        st.t_start = time.monotonic()
        step = st.progress.step
        st.losses = list(st.progress.epoch_losses)
        for epoch in range(st.progress.epoch, st.epochs):
            mine = shard(epoch_batches(d, seed, epoch), rank, world)
            start_batch = st.progress.batch if epoch == st.progress.epoch else 0
            if start_batch == 0:
                st.losses = []
            b = start_batch
            while b < len(mine):
                if step >= st.total:
                    break
                # one optimizer step: `accum` batches (fewer at the end of an epoch), their
                # gradients added up; the RNGs are seeded once per optimizer step and drawn
                # in sample order, so 2 batches of 1 see the noise of 1 batch of 2
                group = mine[b:b + accum]
                step_seed = _step_seed(seed, step, rank)
                torch.manual_seed(step_seed)
                rng = random.Random(step_seed)
                gens = _noise_generators(step_seed)
                micro_losses: list = []  # floats, or loss tensors when deferred
                samples = 0
                for idx in group:
                    flips = [s.data.flip_aug and rng.random() < 0.5 for _ in idx]
                    lat = self._batch_latents(st, idx, flips, rng)
                    captions = [process_caption(d.samples[i].caption, st.rules, rng,
                                                epoch=epoch + 1, step=step,
                                                max_train_steps=st.total)
                                for i in idx]
                    loss = self._loss(st, lat, idx, captions, step, gens, check=not defer)
                    # the mean over the optimizer step's batches, as accelerate scales it
                    acc.backward(loss / accum if accum > 1 else loss)
                    micro_losses.append(loss.detach() if defer else float(loss.detach().item()))
                    samples += lat.shape[0]
                if defer:  # one read for the step; a bad loss still never reaches the weights
                    micro_losses = torch.stack(micro_losses).tolist()
                    self._check_finite(acc, micro_losses, step)
                if s.optimizer.max_grad_norm and acc.sync_gradients:
                    acc.clip_grad_norm_(st.params, s.optimizer.max_grad_norm)
                st.opt.step()
                st.lr_sched.step()
                st.opt.zero_grad(set_to_none=True)
                if s.optimizer.scale_weight_norms:
                    max_norm_(norm_pairs(st.raw_unet if st.train_unet else None,
                                         st.raw_te if st.train_te else None),
                              s.optimizer.scale_weight_norms)
                step += 1
                b += len(group)
                st.steps_this_session += 1
                loss_v = sum(micro_losses) / len(micro_losses)
                st.losses.append(loss_v)
                p = st.progress
                p.step, p.epoch, p.batch, p.epoch_losses = step, epoch, b, st.losses
                self._step_event(st, step, epoch, loss_v, samples * world)
                if self.hooks.sigterm_at and step == self.hooks.sigterm_at:
                    os.kill(os.getpid(), signal.SIGTERM)
                if self._any(acc, self.stop.requested):
                    return self._stopped(st)
                every = s.saving.state_every_n_steps
                if every and step % every == 0 and step < st.total:
                    self._save_state(st)
            self._end_of_epoch(st, epoch, step)
            if step >= st.total:
                break
        final = self._save_lora(final_lora_name(self.cfg.output_name), st,
                                epoch=st.progress.epoch, finished=True)
        if s.saving.save_state:
            self._save_state(st)
        self._rank_checksum(st)
        return self._end(exit_codes.DONE, f"done: {final}")

    # ---- set-up ------------------------------------------------------------------------
    def _accelerator(self):
        from accelerate import Accelerator
        from accelerate.utils import DistributedDataParallelKwargs

        g = self.s.general
        if g.mixed_precision == "fp16" and not torch.cuda.is_available():
            raise LorabakeError("general.mixed_precision = \"fp16\" needs an NVIDIA GPU",
                                "use \"bf16\" or \"no\" on this machine")
        # clip skip leaves the last text-encoder layers without gradients: DDP must know
        unused = g.train != "unet" and g.clip_skip > 1
        kwargs = [DistributedDataParallelKwargs(find_unused_parameters=unused)]
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            # accelerate keeps process-wide state: a second run in the same process (the
            # CLI's tests, a notebook) with another precision must start from scratch
            from accelerate.state import AcceleratorState

            AcceleratorState._reset_state(reset_partial_state=True)
        return Accelerator(mixed_precision=g.mixed_precision, kwargs_handlers=kwargs)

    def _load_model(self, acc):
        from .base_model import load_base_model

        weight_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(
            self.s.general.mixed_precision, torch.float32)
        self.log.line(f"loading {self.cfg.base_model}")
        model = load_base_model(self.cfg.base_model, dtype=torch.float32,
                                base_dir=self.cfg.base_dir)
        for m in (model.unet, model.text_encoder):
            # cast where the weights are, then move: an fp32 UNet is never on the GPU beside
            # its half-precision copy (3.4 GB more at the load's peak, on an 8 GB card)
            if weight_dtype != torch.float32:
                m.to(dtype=weight_dtype)
            m.to(acc.device)
        if acc.device.type == "cpu":
            tune_for_cpu(model.unet)  # measured on CPU only: see cpu_unet
        model.vae.to(acc.device)  # kept in fp32: fp16 VAEs give NaN latents
        model.vae.requires_grad_(False)
        model.vae.eval()
        return model, weight_dtype

    def _prepare(self, acc, seed: int) -> RunState:
        """Data, model, network, optimizer and schedule, the saved state when resuming, and
        the latent cache: everything the loop needs, in one RunState."""
        s, world = self.s, acc.num_processes
        self.cfg = self.cfg.for_processes(world)
        plan = self.cfg.plan
        data = load_train_data(plan)
        for line in data.left_out[:20]:
            self.log.warning(f"not trained: {line}")
        model, weight_dtype = self._load_model(acc)
        unet, te = model.unet, model.text_encoder
        train_unet = s.general.train in ("unet", "both")
        train_te = s.general.train in ("text_encoder", "both")
        n = s.network
        net = lora_configs(n.type, n.dim, n.alpha, n.conv_dim, n.conv_alpha, n.dropout,
                           unet=train_unet, text_encoder=train_te, dylora_unit=n.dylora_unit,
                           blocks=layout_for(n))
        attach(net, unet, te)
        if s.general.attention == "xformers":
            try:
                unet.enable_xformers_memory_efficient_attention()
            except Exception as exc:  # noqa: BLE001 - any failure means: use SDPA
                self.log.warning(f"xformers unavailable ({exc}); using PyTorch SDPA")
        if s.general.gradient_checkpointing:
            unet.enable_gradient_checkpointing()
            if train_te:
                te.gradient_checkpointing_enable(
                    gradient_checkpointing_kwargs={"use_reentrant": False})
        unet.train(train_unet)
        te.train(train_te)

        o = s.optimizer
        unet_names = [name for name, _ in unet.named_parameters() if "lora_" in name]
        groups = param_groups(trainable(unet) if train_unet else [],
                              trainable(te) if train_te else [], lr=o.learning_rate,
                              unet_lr=s.general.unet_lr, te_lr=s.general.text_encoder_lr,
                              unet_blocks=[block_index(name) for name in unet_names],
                              block_weights=lr_weights(n))
        opt = build_optimizer(o.type, groups, lr=o.learning_rate, weight_decay=o.weight_decay,
                              betas=o.betas, d_coef=o.d_coef, decouple=o.decouple,
                              use_bias_correction=o.use_bias_correction,
                              safeguard_warmup=o.safeguard_warmup, device=acc.device)
        # a prepared scheduler steps once per process on each optimizer step
        lr_sched = build_scheduler(o.scheduler, opt, total_steps=plan.total_steps * world,
                                   warmup_steps=plan.warmup_steps * world,
                                   cycles=o.scheduler_cycles)
        if train_unet:
            unet = acc.prepare(unet)
        if train_te:
            te = acc.prepare(te)
        opt, lr_sched = acc.prepare(opt, lr_sched)
        progress = Progress(step=0, epoch=0, batch=0, seed=seed, session_id=uuid.uuid4().hex,
                            started_at=time.time(), total_steps=plan.total_steps,
                            world_size=world)
        rules = self.cfg.caption_rules()
        st = RunState(acc=acc, data=data, net=net, unet=unet, te=te,
                      raw_unet=acc.unwrap_model(unet), raw_te=acc.unwrap_model(te),
                      vae=model.vae, tokenizer=model.tokenizer,
                      noise_scheduler=model.noise_scheduler, model=model, opt=opt,
                      lr_sched=lr_sched, weight_dtype=weight_dtype, train_unet=train_unet,
                      train_te=train_te, total=plan.total_steps, epochs=plan.epochs,
                      steps_per_epoch=plan.steps_per_epoch, progress=progress, rules=rules,
                      cache_te=not train_te and rules.deterministic)
        if self.resume_from is not None:
            st.progress = self._restore(st)
        self._session_id, self._started_at = st.progress.session_id, st.progress.started_at
        st.latents = self._cache_latents(st)
        return st

    def _cache_latents(self, st: RunState) -> LatentCache | None:
        mode = self.s.general.cache_latents
        if mode == "none":
            return None
        train_dir = self.s.data.train_dir
        cache_dir = ProjectFiles(train_dir).latents if train_dir is not None else None
        latents = LatentCache(st.vae, st.model.vae_id, mode, cache_dir)
        self.log.line(f"caching latents ({mode}) for {len(st.data.samples)} image(s)")
        last = [0.0]

        def tick(done: int, n: int) -> None:
            if time.monotonic() - last[0] > 5 or done == n:
                last[0] = time.monotonic()
                self.log.line(f"latents {done}/{n}")

        latents.fill(st.data.samples, (False, True) if self.s.data.flip_aug else (False,),
                     tick, lambda: self.stop.requested)
        if latents.misses:
            self.log.line(f"latents: {latents.misses} encoded, {latents.hits} from disk")
        if st.acc.device.type == "cuda" and not self.s.sampling.every_n_epochs:
            st.vae.to("cpu")  # no longer needed on the GPU
        return latents

    # ---- one step ----------------------------------------------------------------------
    def _batch_latents(self, st: RunState, idx: list[int], flips: list[bool],
                       rng: random.Random) -> torch.Tensor:
        """The batch's latents, scaled for the UNet: from the cache, or encoded now (with a
        random crop and colour jitter when asked)."""
        d = st.data
        with torch.no_grad():
            if st.latents is not None:
                lat = torch.stack([st.latents.get(i, d.samples[i], f)
                                   for i, f in zip(idx, flips, strict=True)])
            else:
                crop_rng = rng if self.s.data.random_crop else None
                color_rng = rng if self.s.data.color_aug else None
                pix = torch.stack([torch.from_numpy(load_pixels(d.samples[i], flip=f,
                                                                crop_rng=crop_rng,
                                                                color_rng=color_rng))
                                   for i, f in zip(idx, flips, strict=True)])
                lat = encode_pixels(st.vae, pix)
            return lat.to(st.acc.device, dtype=torch.float32) * st.vae.config.scaling_factor

    def _text_states(self, st: RunState, idx: list[int], captions: list[str]) -> torch.Tensor:
        g = self.s.general
        if st.cache_te:
            return torch.stack([self._te_cached(st, i) for i in idx]).to(st.acc.device)
        ids = tokenize(st.tokenizer, captions, g.max_token_length)
        with torch.set_grad_enabled(st.train_te):
            return encode(st.te, ids, g.clip_skip,
                          dedupe=not (st.train_te and self.s.network.dropout > 0))

    def _te_cached(self, st: RunState, i: int) -> torch.Tensor:
        hit = st.te_cache.get(i)
        if hit is None:
            g = self.s.general
            with torch.no_grad():
                ids = tokenize(st.tokenizer, [st.data.samples[i].caption], g.max_token_length)
                hit = encode(st.te, ids, g.clip_skip)[0].cpu()
            st.te_cache[i] = hit
        return hit

    def _loss(self, st: RunState, lat: torch.Tensor, idx: list[int], captions: list[str],
              step: int, gens: tuple[torch.Generator, torch.Generator], *,
              check: bool = True) -> torch.Tensor:
        """Noise the latents at random timesteps, predict, and weigh the error (prior loss
        for regularization images, min-SNR): the batch's mean loss, checked finite (unless
        `check` is False: the caller checks)."""
        s, sched, acc = self.s, st.noise_scheduler, st.acc
        noise_gen, t_gen = gens
        noise = torch.randn(lat.shape, generator=noise_gen).to(lat.device, lat.dtype)
        if s.noise.offset:
            noise = offset_noise(noise, s.noise.offset)
        if s.noise.multires_iterations:
            noise = pyramid_noise(noise, s.noise.multires_iterations, s.noise.multires_discount)
        t = torch.randint(0, sched.config.num_train_timesteps, (lat.shape[0],),
                          generator=t_gen).to(acc.device)
        noisy = sched.add_noise(lat, noise, t)
        with acc.autocast():
            states = self._text_states(st, idx, captions)
            pred = st.unet(noisy.to(st.weight_dtype), t, states.to(st.weight_dtype)).sample
        v_pred = sched.config.prediction_type == "v_prediction"
        target = sched.get_velocity(lat, noise, t) if v_pred else noise
        per = F.mse_loss(pred.float(), target.float(), reduction="none").mean(dim=[1, 2, 3])
        prior = s.data.prior_loss_weight
        weights = torch.tensor([prior if st.data.samples[i].is_reg else 1.0 for i in idx],
                               device=per.device)
        per = per * weights
        if s.optimizer.min_snr_gamma:
            per = per * min_snr_weight(sched.alphas_cumprod, t.cpu(),
                                       s.optimizer.min_snr_gamma,
                                       v_prediction=v_pred).to(per.device)
        loss = per.mean()
        if self.hooks.oom_at and step + 1 == self.hooks.oom_at:
            raise torch.OutOfMemoryError("injected by LORABAKE_TEST_OOM_AT_STEP")
        if self.hooks.nan_at and step + 1 == self.hooks.nan_at:
            loss = loss * float("nan")
        if check:
            self._check_finite(acc, [float(loss.detach().item())], step)
        return loss

    def _check_finite(self, acc, losses: list[float], step: int) -> None:
        bad = next((v for v in losses if not math.isfinite(v)), None)
        if self._any(acc, bad is not None):
            what = "non-finite on another process" if bad is None else bad
            raise NonFiniteLoss(f"loss became {what} at step {step + 1}: stopped; the last "
                                "good save is kept (try bf16, a lower learning rate, or fp32)")

    @staticmethod
    def _any(acc, flag: bool) -> bool:
        """The same decision on every process (stop, NaN): one tiny all-reduce under DDP."""
        if acc.num_processes == 1:
            return bool(flag)
        t = torch.tensor([1.0 if flag else 0.0], device=acc.device)
        return bool(acc.reduce(t, reduction="sum").item() > 0)

    def _step_event(self, st: RunState, step: int, epoch: int, loss: float,
                    samples_per_step: int) -> None:
        if not st.acc.is_main_process:
            return
        elapsed = max(1e-9, time.monotonic() - st.t_start)
        it_s = st.steps_this_session / elapsed
        vram = None
        if st.acc.device.type == "cuda":
            vram = _gb(torch.cuda.max_memory_allocated(st.acc.device))
        window = st.losses[-100:]
        avg = sum(window) / len(window)
        self.log.event(EventType.STEP, step=step, total_steps=st.total, epoch=epoch + 1, loss=loss,
                       avg_loss=avg, lr=current_lrs(st.opt), it_per_s=round(it_s, 4),
                       samples_per_s=round(it_s * samples_per_step, 4),
                       eta_s=round((st.total - step) / it_s, 1), vram_gb=vram)
        if self.tb is not None:
            names = [g.get("name", str(k)) for k, g in enumerate(st.opt.param_groups)]
            self.tb.step(step, loss=loss, avg_loss=avg, it_per_s=it_s,
                         lrs=dict(zip(names, current_lrs(st.opt), strict=True)))
        if step == 1 or step % 10 == 0 or step == st.total:
            self.log.line(f"step {step}/{st.total} epoch {epoch + 1} loss {loss:.5f} "
                          f"avg {avg:.5f} {it_s:.2f} it/s")

    # ---- the end of an epoch -------------------------------------------------------------
    def _end_of_epoch(self, st: RunState, epoch: int, step: int) -> None:
        s, p = self.s, st.progress
        p.epoch, p.batch, p.epoch_losses = epoch + 1, 0, []
        avg = sum(st.losses) / len(st.losses) if st.losses else None
        self.log.event(EventType.EPOCH, epoch=epoch + 1, epochs=st.epochs, step=step, avg_loss=avg)
        self.log.line(f"epoch {epoch + 1}/{st.epochs} done, average loss "
                      f"{avg if avg is None else round(avg, 5)}")
        final = step >= st.total or epoch + 1 == st.epochs
        if not final and (epoch + 1) % s.saving.every_n_epochs == 0:
            self._save_lora(epoch_file(self.cfg.output_name, epoch + 1), st, epoch=epoch + 1)
            if st.acc.is_main_process:
                for path in prune_epoch_files(self.run_dir, self.cfg.output_name,
                                              s.saving.keep_last):
                    self.log.line(f"removed {path.name} (keep_last)")
            if s.saving.save_state:
                self._save_state(st)
        every = s.sampling.every_n_epochs
        if every and (epoch + 1) % every == 0 and s.sampling.prompts:
            self._sample(st, epoch + 1)

    # ---- saving ------------------------------------------------------------------------
    def _start_summary(self, st: RunState) -> dict:
        s, d = self.s, st.data
        return {
            "run_dir": str(self.run_dir), "output_name": self.cfg.output_name,
            "total_steps": st.total, "epochs": st.epochs,
            # batches per process (kohya's "num batches per epoch"); with accumulation the
            # optimizer steps are fewer
            "batches_per_epoch": math.ceil(d.batches_per_epoch / st.acc.num_processes),
            "steps_per_epoch": st.steps_per_epoch,
            "gradient_accumulation_steps": self.cfg.plan.grad_accum, "step": st.progress.step,
            "resumed": self.resume_from is not None, "images": len(d.samples),
            "train_samples": d.num_train_images, "reg_samples": d.num_reg_images,
            "batch_size": s.general.batch_size, "processes": st.acc.num_processes,
            "device": str(st.acc.device), "mixed_precision": s.general.mixed_precision,
            "torch_threads": torch.get_num_threads(),
            "network": st.net.kind, "dim": s.network.dim, "alpha": s.network.alpha,
            "optimizer": s.optimizer.type, "scheduler": s.optimizer.scheduler,
            "base_model": st.model.name, "buckets": {f"{w}x{h}": d.report.samples((w, h))
                                                     for w, h in sorted(d.report.buckets)},
        }

    def _metadata(self, st: RunState, *, epoch: int, finished: bool) -> dict[str, str]:
        # kohya stamps ss_training_finished_at on every save, not only the last
        run = RunFacts(
            session_id=self._session_id, started_at=self._started_at, saved_at=time.time(),
            steps=st.progress.step, epoch=epoch,
            network_args={**st.net.args(), **block_network_args(self.s.network)},
            optimizer_class=optimizer_class(st.opt), sd_model_name=st.model.name,
            sd_model_hash=st.model.legacy_hash, new_sd_model_hash=st.model.sha256)
        return training_metadata(self.s, self.cfg.plan, st.data, run)

    def _save_lora(self, name: str, st: RunState, *, epoch: int,
                   finished: bool = False) -> Path:
        path = self.run_dir / name
        acc = st.acc
        acc.wait_for_everyone()
        if acc.is_main_process:
            tensors = kohya_state(st.net, st.raw_unet, st.raw_te,
                                  SAVE_DTYPES[self.s.saving.precision])
            size = write_lora(path, tensors, self._metadata(st, epoch=epoch, finished=finished))
            self.files.append(path)
            self.log.event(EventType.SAVE, path=str(path), step=st.progress.step,
                           epoch=epoch, bytes=size)
            self.log.line(f"saved {path}")
        acc.wait_for_everyone()
        return path

    def _save_state(self, st: RunState) -> None:
        acc = st.acc
        acc.wait_for_everyone()
        if acc.is_main_process:
            adapters = {}
            if st.net.unet_config is not None:
                adapters["unet"] = adapter_state(st.raw_unet)
            if st.net.te_config is not None:
                adapters["te"] = adapter_state(st.raw_te)
            path = save_state(self.run_dir, st.progress, adapters=adapters,
                              optimizer=_inner(st.opt, "optimizer"),
                              scheduler=_inner(st.lr_sched, "scheduler"), scaler=acc.scaler)
            self.log.event(EventType.SAVE, path=str(path), kind=STATE_SAVE,
                           step=st.progress.step)
            self.log.line(f"state saved at step {st.progress.step}")
        acc.wait_for_everyone()

    def _stopped(self, st: RunState) -> Outcome:
        self._save_state(st)
        p = st.progress
        path = self._save_lora(step_file(self.cfg.output_name, p.step), st, epoch=p.epoch)
        why = self.stop.signal_name or "a stop request"
        return self._end(exit_codes.STOPPED, f"stopped by {why} at step {p.step}: state "
                         f"saved, {path.name} written; continue with "
                         f"`lorabake train --resume {self.run_dir}`")

    def _restore(self, st: RunState) -> Progress:
        src = Path(self.resume_from)
        state = src if (src / "progress.json").is_file() else find_state(src)
        if state is None:
            raise LorabakeError(f"{src}: no saved state to resume from",
                                "a run saves state when stopped, or with saving.save_state")
        saved = read_progress(state)
        acc = st.acc
        if saved.world_size != acc.num_processes:
            self.log.warning(f"the run was saved with {saved.world_size} process(es), now "
                             f"{acc.num_processes}: the batch order changes")
        if saved.total_steps != st.total:
            self.log.warning(f"total steps changed from {saved.total_steps} to {st.total} "
                             "(dataset or config changed)")
        adapters = load_adapters(state)
        if st.net.unet_config is not None:
            load_adapter_state(st.raw_unet, adapters["unet"])
        if st.net.te_config is not None:
            load_adapter_state(st.raw_te, adapters["te"])
        load_into(state, optimizer=_inner(st.opt, "optimizer"),
                  scheduler=_inner(st.lr_sched, "scheduler"), scaler=acc.scaler)
        self.log.line(f"resumed from {state} at step {saved.step} (epoch {saved.epoch + 1}, "
                      f"batch {saved.batch})")
        saved.total_steps = st.total
        return saved

    def _sample(self, st: RunState, epoch: int) -> None:
        acc = st.acc
        if not acc.is_main_process:
            acc.wait_for_everyone()
            return
        from .sampling import sample_images

        try:
            paths = sample_images(st.model, st.raw_unet, st.raw_te, self.s,
                                  self.cfg.output_name, self.run_dir, epoch, acc.device)
        except Exception as exc:  # noqa: BLE001 - a failed preview must not end the run
            self.log.warning(f"sampling failed: {exc}")
        else:
            self.log.event(EventType.SAMPLE, epoch=epoch, paths=[str(p) for p in paths])
        acc.wait_for_everyone()

    def _end(self, code: int, message: str) -> Outcome:
        status = {exit_codes.DONE: EndStatus.DONE,
                  exit_codes.STOPPED: EndStatus.STOPPED}.get(code, EndStatus.FAILED)
        if code not in (exit_codes.DONE, exit_codes.STOPPED):
            self.log.error(message)
        else:
            self.log.line(message)
        self.log.event(EventType.END, status=status, message=message, exit_code=code)
        return Outcome(code, message, self.files)

    def _rank_checksum(self, st: RunState) -> None:
        """Test hook: each process writes a checksum of its adapter weights (DDP test)."""
        if not self.hooks.rank_checksums:
            return
        import hashlib

        h = hashlib.sha256()
        for model in (st.raw_unet, st.raw_te):
            for name, p in sorted(model.named_parameters()):
                if is_adapter_param(name):
                    h.update(p.detach().float().cpu().numpy().tobytes())
        atomic_write_text(self.run_dir / rank_checksum_name(st.acc.process_index),
                          h.hexdigest())


def write_snapshot(cfg: RunConfig, run_dir: Path) -> None:
    """The config the run used, paths made absolute: resume reads it back."""
    atomic_write_text(run_dir / CONFIG_SNAPSHOT, with_absolute_paths(cfg.text, cfg.base_dir))
