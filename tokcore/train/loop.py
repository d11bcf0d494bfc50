"""The one gradient training loop, shared by every trainer.

`TrainingRun(spec, run_dir, resume, ctx).train()` is what every process executes (one
process, or one per rank under `tokcore train --nproc N`, torchrun or SLURM). The trainer
provides the step; the loop owns the rest: data and its split across ranks, devices and
precision, accumulation and clipping, the schedule, weight EMA, evaluation, pictures,
checkpoints and resumption, and the NaN guard.

Resumption is bit-exact on CPU: the checkpoint holds weights, optimizer and scaler state,
the EMA, every rank's random generators and the step, and the data order depends only on
(seed, step), so a run killed at any point and resumed ends with the same weights as one
that never stopped.
"""

from __future__ import annotations

import contextlib
import json
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import torch
from torch.utils.data import DataLoader

from tokcore.batch import Collate, GuardedDataset, PackedCollate, resize_batch, to_device
from tokcore.config import dump
from tokcore.config.spec import RunSpec, TrainSettings
from tokcore.errors import ConfigError
from tokcore.registry.hooks import plugin_manager
from tokcore.run import checkpoint as ckpt
from tokcore.run import meta as tokenizer_meta
from tokcore.run.checkpoint import Checkpoint
from tokcore.runtime.device import autocast as mixed_precision
from tokcore.runtime.distributed import (
    Context,
    all_reduce_grads,
    all_reduce_mean,
    any_rank,
)
from tokcore.runtime.state import set_rng_state
from tokcore.tokenizer import Tokenizer
from tokcore.train.build import build_parts, prepare_run_dir, seed_everything
from tokcore.train.evaluate import evaluate
from tokcore.train.log import MetricsLog, format_metrics
from tokcore.train.optim import WeightEMA, adamw, learning_rate, no_weight_decay, settings_for
from tokcore.train.packing import SizedViews, TokenBudgetSampler, ViewSizes
from tokcore.train.sampler import StepBatchSampler
from tokcore.train.samples import samples_path, write_samples

SHOWN_FAILURES = 10  # failed samples announced on the console per process (all are recorded)


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the run stopped before the bad update (exit 1)."""


@dataclass
class Run:
    """What hooks (entry-point group tokcore.plugins) see of a run."""

    config: dict[str, Any]
    run_dir: Path
    model: Tokenizer
    ctx: Context
    step: int = 0
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def rank(self) -> int:
        return self.ctx.rank


class TrainingRun:
    """One process's share of a gradient-trained run, assembled from a RunSpec."""

    def __init__(self, spec: RunSpec, run_dir: Path, resume: bool, ctx: Context):
        s = self.settings = spec.train
        self.spec, self.run_dir, self.ctx = spec, run_dir, ctx
        latest = prepare_run_dir(run_dir, spec, resume, ctx)
        parts = build_parts(spec)
        self.model, self.trainer = parts.model, parts.trainer
        self.train_set, self.val_set = parts.train_set, parts.val_set
        self.log = MetricsLog(run_dir, s.steps, 0, ctx.is_main)
        self.evaluates = len(self.val_set) > 0
        self.keep_best = s.keep_best
        if not self.evaluates:
            self.log.message(f"no held-out samples (the val split of data '{spec.data.name}' is empty): the run "
                             "trains and saves without evaluation or sample pictures")
        if s.init_from and latest is None:
            self._init_from(s.init_from)
        for part in s.freeze:
            getattr(self.model, part).requires_grad_(False)
        self.model.to(ctx.device)
        self.trainer.to(ctx.device)
        self.ema = WeightEMA(self.model, s.ema_decay) if s.ema_decay else None
        exempt = no_weight_decay(self.model, self.trainer)  # codebooks, position tables: declared by their modules
        params = self.trainer.optimizer_params(self.model)
        overrides = self.trainer.optimizer_settings()
        self.optimizer_settings = {name: settings_for(s, name, overrides) for name in params}  # lr, betas per optimizer
        self.optimizers = {name: adamw(p, self.optimizer_settings[name], exempt) for name, p in params.items()}
        self.scaler = torch.amp.GradScaler(ctx.device.type, enabled=s.precision == "fp16")
        self.start_step, self.best = 0, {"value": None, "step": None}
        seed_everything(spec.seed * 1_000_003 + ctx.rank)  # each rank its own stream from here on
        if latest is not None:
            self._restore(latest)
        self.collate = Collate(self.model.modality)
        self.batches = self._train_batches()
        self.ddp: torch.nn.Module = self.model
        if ctx.distributed:
            import warnings

            from torch.nn.parallel import DistributedDataParallel

            with warnings.catch_warnings():  # its replacement (forward_sync_buffers) syncs at init: not wanted here
                warnings.filterwarnings("ignore", "`broadcast_buffers` is deprecated", FutureWarning)
                self.ddp = DistributedDataParallel(self.model, device_ids=[ctx.device] if ctx.device.type == "cuda"
                                                   else None, broadcast_buffers=False)  # quantizers sync their own state
        self.hooks, _ = plugin_manager()
        self.info = Run(dict(spec.config), run_dir, self.model, ctx, self.start_step)
        self.autocast = mixed_precision(ctx.device, s.precision)
        self.meta = tokenizer_meta.describe(self.model, spec)
        self.failed_log = run_dir / f"failed_samples.rank{ctx.rank}.jsonl"
        self.failures_shown = 0

    # -- setting up ---------------------------------------------------------------------------
    def _init_from(self, source: str) -> None:
        weights = Checkpoint(source).weights()
        loaded, skipped = ckpt.load_weights(self.model, weights, strict=False)
        for part in self.settings.freeze:  # a frozen part that did not load would stay random for the whole run
            if missing := [k for k in skipped if k.startswith(f"{part}.")]:
                raise ConfigError(f"{len(missing)} tensors of the frozen {part} ({missing[0]}, ...) are not in {weights} "
                                  f"with the same shape; make model.{part} match the run it comes from "
                                  f"(its config.yaml), or do not freeze it", key="train.freeze",
                                  file=self.spec.where("train.freeze"))
        self.log.message(f"init_from {weights}: loaded {len(loaded)} tensors" +
                         (f", kept {len(skipped)} new ({', '.join(sorted({k.split('.')[0] for k in skipped}))})"
                          if skipped else ""))

    def _restore(self, latest: Path) -> None:
        ckpt.load_weights(self.model, latest / "model.safetensors")
        ckpt.load_weights(self.trainer, latest / "trainer.safetensors")
        if self.ema is not None and (latest / "model_ema.safetensors").is_file():
            ckpt.load_weights(self.ema.model, latest / "model_ema.safetensors")
        state, rng = ckpt.load_training_state(latest, self.ctx.rank)
        for name, opt in self.optimizers.items():
            opt.load_state_dict(state["optimizers"][name])
        self.scaler.load_state_dict(state["scaler"])
        self.start_step, self.best = state["step"], state["best"]
        if rng is not None:
            set_rng_state(rng)
        self.log.message(f"resumed from {latest} at step {self.start_step}")

    def _train_batches(self) -> Iterator[dict[str, Any]]:
        s, ctx = self.settings, self.ctx
        dataset, collate = self.train_set, self.collate
        if s.max_tokens is not None:
            dataset, sampler = self._packed(s, ctx)
            collate = PackedCollate(self.model.modality)
        else:
            sampler = StepBatchSampler(len(self.train_set), s.batch_size, s.grad_accum, ctx.rank, ctx.world_size,
                                       self.spec.seed, start_step=self.start_step)
        # The loader gets its own generator: it must not draw from the global RNG, or a resumed
        # run would consume random numbers the uninterrupted run did not.
        loader = DataLoader(GuardedDataset(dataset), batch_sampler=sampler, collate_fn=collate,
                            num_workers=s.num_workers, pin_memory=ctx.device.type == "cuda",
                            generator=torch.Generator().manual_seed(self.spec.seed),
                            persistent_workers=s.num_workers > 0)
        return iter(loader)

    def _packed(self, s: TrainSettings, ctx: Context) -> tuple[SizedViews, TokenBudgetSampler]:
        """Packed training (train.max_tokens): each sample's size and token count drawn per
        epoch (train.views), micro-batches filled to the token budget."""
        encoder = self.model.encoder
        where = self.spec.where("train.max_tokens")
        if not (hasattr(encoder, "forward_packed") and hasattr(encoder, "sequence_length")):
            raise ConfigError(f"encoder '{self.spec.model.encoder.name}' cannot run packed batches (no forward_packed); "
                              "remove train.max_tokens or use an encoder that packs (titok)", key="train.max_tokens",
                              file=where)
        if s.views is None:
            raise ConfigError("packed batches draw each sample's size: set train.views "
                              "({height: [min, max], width: [min, max], ...})", key="train.views", file=where)
        if s.multires:
            raise ConfigError("train.multires resizes fixed-size batches; with train.max_tokens use train.views",
                              key="train.multires", file=where)
        first = torch.as_tensor(self.train_set[0]["input"])
        clip_frames = first.shape[1] if first.dim() == 4 else None
        views = SizedViews(self.train_set, ViewSizes.from_config(s.views), encoder.patch_shape,
                           encoder.num_tokens_range, self.spec.seed, clip_frames)
        sampler = TokenBudgetSampler(views.lengths(encoder.sequence_length), s.max_tokens, s.grad_accum, ctx.rank,
                                     ctx.world_size, self.spec.seed, start_step=self.start_step)
        return views, sampler

    def _val_batches(self, s: TrainSettings, ctx: Context) -> Iterator[dict[str, Any]]:
        shard = list(range(ctx.rank, len(self.val_set), ctx.world_size))
        batches = [shard[i:i + s.batch_size] for i in range(0, len(shard), s.batch_size)]
        if s.eval_batches > 0:
            batches = batches[: s.eval_batches]
        loader = DataLoader(GuardedDataset(self.val_set), batch_sampler=batches, collate_fn=self.collate, num_workers=0)
        failed = []
        for batch in loader:
            failed += batch["failed"]
            yield to_device(batch, ctx.device)
        if failed and ctx.is_main:  # held-out samples that fail would otherwise only thin the figures
            self.log.message(f"evaluation skipped {len(failed)} held-out sample(s) that failed; first: {failed[0]['error']}")

    # -- the loop -----------------------------------------------------------------------------
    def train(self) -> dict[str, float]:
        """Run from the start (or resumed) step to the last; returns the final metrics."""
        s = self.settings
        self.hooks.hook.tokcore_train_start(run=self.info)
        metrics: dict[str, float] = {}
        self.log.progress.resume_at(self.start_step)
        try:
            for step in range(self.start_step, s.steps):
                step_metrics = self._step(step)
                if step_metrics is None:
                    continue
                done = step + 1
                self.log.advance(done)
                if done % s.log_every == 0 or done == s.steps:
                    metrics = step_metrics
                    self.log.write(done, metrics)
                    self.hooks.hook.tokcore_train_step_end(run=self.info, step=done, metrics=metrics)
                self.info.step = done
                if self.evaluates and _due(done, s.eval_every, s.steps):
                    metrics = {**metrics, **self._evaluate(done)}
                if self.evaluates and _due(done, s.samples_every, s.steps):
                    self._write_samples(done)
                if _due(done, s.save_every, s.steps):
                    self._save(done)
        finally:
            self.log.close()
        self.info.metrics = metrics
        self.hooks.hook.tokcore_train_end(run=self.info, metrics=metrics)
        return metrics

    def _next_micro_batches(self, step: int) -> list[dict[str, Any]]:
        micro = []
        for _ in range(self.settings.grad_accum):
            batch = next(self.batches)
            if batch["failed"]:
                self._record_failures(step, batch["failed"])
            if batch["input"] is not None:  # None: every sample of it failed (recorded above)
                micro.append(to_device(batch, self.ctx.device))
        return micro

    def _record_failures(self, step: int, failed: list[dict[str, Any]]) -> None:
        """Every failed sample goes to failed_samples.rank<R>.jsonl; the first few also to the
        console, so a broken file is seen when it happens, not found later."""
        with open(self.failed_log, "a", encoding="utf-8") as f:
            f.writelines(json.dumps({"step": step, **x}) + "\n" for x in failed)
        for x in failed:
            self.failures_shown += 1
            if self.failures_shown <= SHOWN_FAILURES:
                self._say(f"step {step}: skipped {x['error']}")
            if self.failures_shown == SHOWN_FAILURES:
                self._say(f"(further failed samples are only recorded in {self.failed_log})")

    def _say(self, text: str) -> None:
        """A console line from any rank (rank 0's through the log, above its progress bar)."""
        if self.ctx.is_main:
            self.log.message(text)
        else:
            print(f"rank {self.ctx.rank}: {text}", file=sys.stderr, flush=True)

    def _step(self, step: int) -> dict[str, float] | None:
        """One optimizer step (each optimizer, over the micro-batches); its metrics averaged
        over ranks, or None when the step was skipped."""
        s, ctx = self.settings, self.ctx
        for name, opt in self.optimizers.items():
            for g in opt.param_groups:
                g["lr"] = learning_rate(step, self.optimizer_settings[name])
        self.model.train()
        for part in s.freeze:  # frozen parts stay deterministic: no dropout, no codebook updates
            getattr(self.model, part).eval()
        micro = self._next_micro_batches(step)
        if any_rank(not micro, ctx):  # all ranks skip together, or the others would wait in all-reduce
            self.log.message(f"step {step}: a rank has no loadable sample in this step's batch; step skipped")
            return None
        if s.multires:
            lo, hi, inc = s.multires
            size = random.Random(self.spec.seed * 7919 + step).randrange(lo, hi + 1, inc)
            micro = [resize_batch(b, size) for b in micro]
        step_metrics: dict[str, float] = {}
        stepped = False
        for name, opt in self.optimizers.items():
            opt.zero_grad(set_to_none=True)
            sits_out, diverged, loss = False, False, None
            for m, batch in enumerate(micro):
                last = m == len(micro) - 1 or self.ddp is self.model
                with contextlib.nullcontext() if last else self.ddp.no_sync():
                    with self.autocast:
                        out = self.trainer.training_step(self.ddp, batch, step, optimizer=name)
                    # A loss without a graph sits this optimizer out for the step (a GAN
                    # discriminator before its start step): no backward, no update.
                    sits_out = not out.loss.requires_grad
                    if not sits_out:
                        self.scaler.scale(out.loss.float() / len(micro)).backward()
                loss = float(out.loss.detach())
                diverged |= not torch.isfinite(out.loss.detach()).item()
                key = "loss" if len(self.optimizers) == 1 else f"loss/{name}"
                step_metrics[key] = step_metrics.get(key, 0.0) + loss / len(micro)
                for k, v in out.metrics.items():
                    step_metrics[k] = step_metrics.get(k, 0.0) + float(v) / len(micro)
            if any_rank(diverged, ctx):
                raise TrainingDiverged(
                    f"step {step}: the loss is {loss} on at least one rank; stopped before the update. "
                    f"Last good checkpoint: {ckpt.latest_checkpoint(self.run_dir) or 'none'}. "
                    "Lower train.lr, set train.clip_grad, or use fp32")
            if sits_out:
                continue
            if ctx.distributed:  # DDP averages the model's gradients, not the trainer's own
                all_reduce_grads([p for p in self.trainer.parameters() if p.grad is not None], ctx)
            if s.clip_grad is not None:
                self.scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], s.clip_grad)
            self.scaler.step(opt)
            stepped = True
        if stepped:
            self.scaler.update()
        if self.ema is not None:
            self.ema.update(self.model)
        done = step + 1
        if done % s.log_every == 0 or done == s.steps:
            rates = {"lr" if i == 0 else f"lr/{name}": learning_rate(step, self.optimizer_settings[name])
                     for i, name in enumerate(self.optimizers)}  # the first is the model's
            return all_reduce_mean(step_metrics, ctx) | rates
        return {}

    # -- evaluation, pictures, checkpoints ------------------------------------------------------
    def _evaluate(self, step: int) -> dict[str, float]:
        s, ctx = self.settings, self.ctx
        loss = self.trainer.loss
        ev = {f"val/{k}": v for k, v in evaluate(self.model, loss, self._val_batches(s, ctx), ctx, self.autocast).items()}
        if self.ema is not None:
            ev.update({f"val_ema/{k}": v for k, v in
                       evaluate(self.ema.model, loss, self._val_batches(s, ctx), ctx, self.autocast).items()})
        if not ev:
            self.log.message(f"step {step}: no held-out sample could be evaluated (see the lines above)")
            return ev
        self.log.write(step, ev)
        self.log.message(f"step {step}: " + format_metrics(ev))
        if self.keep_best is not None:
            if self.keep_best not in ev:  # known only now; a run is never thrown away for it
                self.log.message(f"train.keep_best: '{self.keep_best}' is not an evaluation metric, so no best "
                                 f"checkpoint is kept; the metrics are: {', '.join(sorted(ev))}")
                self.keep_best = None
            elif self.best["value"] is None or ev[self.keep_best] < self.best["value"]:
                self.best = {"value": ev[self.keep_best], "step": step}
        return ev

    def _write_samples(self, step: int) -> None:
        if not self.ctx.is_main:
            return
        shown = self.ema.model if self.ema is not None else self.model
        one = TrainSettings(batch_size=min(8, len(self.val_set)), eval_batches=1)
        batch = next(self._val_batches(one, Context(device=self.ctx.device)), None)
        if batch is not None:
            write_samples(shown, batch["raw"], samples_path(self.run_dir, step))

    def _save(self, step: int) -> None:
        state = {"step": step, "best": self.best, "scaler": self.scaler.state_dict(), "threads": torch.get_num_threads(),
                 "optimizers": {n: o.state_dict() for n, o in self.optimizers.items()}}
        path = ckpt.save_checkpoint(self.run_dir, step, self.ctx, model=self.model,
                                    ema=self.ema.model if self.ema else None, trainer=self.trainer, state=state,
                                    tokenizer_meta=self.meta, config_text=dump(self.spec.config))
        if self.ctx.is_main:
            ckpt.prune(self.run_dir, self.settings.keep_last, {self.best["step"]} if self.best["step"] is not None else set())
            self.hooks.hook.tokcore_checkpoint_saved(run=self.info, step=step, path=str(path))


def _due(done: int, every: int, last: int) -> bool:
    """Whether a periodic action falls on step `done` (every `every` steps, and the last)."""
    return (every > 0 and done % every == 0) or done == last
