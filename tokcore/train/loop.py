"""The one training loop, shared by every trainer.

`run(config, run_dir, resume)` is what every process executes (one process, or one per rank
under `tokcore train --nproc N`, torchrun or SLURM). The trainer provides the step; the loop
owns the rest: data and its split across ranks, devices and precision, accumulation and
clipping, the schedule, weight EMA, evaluation, pictures, checkpoints and resumption, and the
NaN guard.

Resumption is bit-exact on CPU: the checkpoint holds weights, optimizer and scaler state,
the EMA, every rank's random generators and the step, and the data order depends only on
(seed, step), so a run killed at any point and resumed ends with the same weights as one
that never stopped.
"""

from __future__ import annotations

import contextlib
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader

from tokcore import registry
from tokcore.config import dump
from tokcore.errors import ConfigError, TokcoreError
from tokcore.runtime.io import atomic_write_text
from tokcore.runtime.device import autocast as mixed_precision
from tokcore.tokenizer import Tokenizer, build_tokenizer
from tokcore.run import checkpoint as ckpt
from tokcore.batch import Collate, GuardedDataset, resize_batch, to_device
from tokcore.runtime.distributed import Context, all_reduce_grads, all_reduce_mean, any_rank, barrier, process_group
from tokcore.train.evaluate import evaluate
from tokcore.train.log import MetricsLog, read_metrics
from tokcore.train.samples import samples_path, write_samples as write_reconstructions
from tokcore.train.optim import WeightEMA, adamw, learning_rate
from tokcore.train.sampler import StepBatchSampler
from tokcore.config.settings import TrainSettings

DEFAULT_TRAINER = {"name": "vqvae"}
DEFAULT_LOSS = {"name": "reconstruction"}


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the run stopped before the bad update (exit 1)."""


@dataclass
class Run:
    """What hooks (tokcore.plugins) see of a run."""

    config: dict[str, Any]
    run_dir: Path
    model: Tokenizer
    ctx: Context
    step: int = 0
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def rank(self) -> int:
        return self.ctx.rank


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def settings_of(config: dict[str, Any]) -> TrainSettings:
    return TrainSettings(**config.get("train", {}))


def build_data(config: dict[str, Any], split: str) -> Any:
    if "data" not in config:
        raise ConfigError("missing 'data' (a dataset config with 'name'; see: tokcore list datasets)", key="data")
    try:
        return registry.build("dataset", {**config["data"], "split": split})
    except ConfigError as err:
        raise err.located(prefix="data") from None


def build_model(config: dict[str, Any], input_shape: tuple[int, ...]) -> Tokenizer:
    if "model" not in config:
        raise ConfigError("missing 'model' (encoder, quantizer and decoder configs)", key="model")
    return build_tokenizer(config["model"], config.get("modality"), input_shape)


def tokenizer_meta(model: Tokenizer, config: dict[str, Any]) -> dict[str, Any]:
    """What tokenizer.json records: enough to rebuild and describe the tokenizer alone."""
    import importlib.metadata as md

    from tokcore._version import __version__

    parts = [(kind, config["model"][kind]) for kind in ("encoder", "quantizer", "decoder") if kind in config["model"]]
    parts += [("modality", config["modality"])] if config.get("modality") else []
    used = {registry.provider(kind, cfg["name"]).dist for kind, cfg in parts}
    versions = {}
    for dist in sorted(used):
        try:
            versions[dist] = md.version(dist)
        except md.PackageNotFoundError:
            versions[dist] = ""
    return {"format": 1, "tokcore_version": __version__, **model.info(), "model": config["model"],
            "plugins": versions}


def _freeze(model: Tokenizer, parts: list[str]) -> None:
    for part in parts:
        getattr(model, part).requires_grad_(False)


def _set_train_mode(model: Tokenizer, frozen: list[str]) -> None:
    model.train()
    for part in frozen:  # frozen parts stay deterministic: no dropout, no codebook updates
        getattr(model, part).eval()


def _init_from(model: Tokenizer, source: str, log: MetricsLog, frozen: list[str]) -> None:
    path = ckpt.resolve_checkpoint(source)
    weights = path / "model_ema.safetensors"
    weights = weights if weights.is_file() else path / "model.safetensors"
    loaded, skipped = ckpt.load_weights(model, weights, strict=False)
    for part in frozen:  # a frozen part that did not load would stay random for the whole run
        if missing := [k for k in skipped if k.startswith(f"{part}.")]:
            raise ConfigError(f"{len(missing)} tensors of the frozen {part} ({missing[0]}, ...) are not in {weights} "
                              f"with the same shape; make model.{part} match the run it comes from "
                              f"(its config.yaml), or do not freeze it", key="train.freeze")
    log.message(f"init_from {weights}: loaded {len(loaded)} tensors" +
                (f", kept {len(skipped)} new ({', '.join(sorted({k.split('.')[0] for k in skipped}))})" if skipped else ""))


def _val_batches(dataset: Any, s: TrainSettings, ctx: Context, collate: Collate) -> Iterator[dict[str, Any]]:
    shard = list(range(ctx.rank, len(dataset), ctx.world_size))
    batches = [shard[i:i + s.batch_size] for i in range(0, len(shard), s.batch_size)]
    if s.eval_batches > 0:
        batches = batches[: s.eval_batches]
    loader = DataLoader(GuardedDataset(dataset), batch_sampler=batches, collate_fn=collate, num_workers=0)
    for batch in loader:
        yield to_device(batch, ctx.device)


def prepare_run_dir(run_dir: Path, config: dict[str, Any], resume: bool, ctx: Context) -> Path | None:
    latest = ckpt.latest_checkpoint(run_dir)
    if latest is not None and not resume:
        raise TokcoreError(f"{run_dir} already has checkpoints; pass --resume to continue it, or choose another --output")
    if ctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / "config.yaml", dump(config))
        if latest is not None:  # forget log lines of steps that will be run again
            start = int(latest.name.split("-")[1])
            rows = [r for r in read_metrics(run_dir) if r.get("step", 0) <= start]
            atomic_write_text(run_dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    barrier(ctx)
    return latest


def fits(config: dict[str, Any]) -> bool:
    """Whether the config's trainer fits in one pass (a FitTrainer) instead of gradient steps."""
    from tokcore.interfaces import FitTrainer

    return issubclass(registry.get("trainer", config.get("trainer", DEFAULT_TRAINER)["name"]), FitTrainer)


def run(config: dict[str, Any], run_dir: str | Path, resume: bool = False) -> dict[str, float]:
    """Train as one process of a (possibly distributed) run; returns the final metrics."""
    s = settings_of(config)
    with process_group(s.device) as ctx:
        if fits(config):
            from tokcore.train.fit import fit_run

            return fit_run(config, Path(run_dir), resume, ctx)
        return _train(config, Path(run_dir), resume, s, ctx)


def _train(config: dict[str, Any], run_dir: Path, resume: bool, s: TrainSettings, ctx: Context) -> dict[str, float]:
    from tokcore.registry.hooks import plugin_manager

    seed = int(config.get("seed", 0))
    latest = prepare_run_dir(run_dir, config, resume, ctx)
    train_set, val_set = build_data(config, "train"), build_data(config, "val")
    input_shape = tuple(torch.as_tensor(train_set[0]["input"]).shape)

    seed_everything(seed)  # identical initial weights on every rank
    model = build_model(config, input_shape)
    trainer = registry.build("trainer", config.get("trainer", DEFAULT_TRAINER))
    trainer.loss = registry.build("loss", config.get("loss", DEFAULT_LOSS))
    log = MetricsLog(run_dir, s.steps, 0, ctx.is_main)
    if s.init_from and latest is None:
        _init_from(model, s.init_from, log, s.freeze)
    _freeze(model, s.freeze)
    model.to(ctx.device)
    trainer.to(ctx.device)
    ema = WeightEMA(model, s.ema_decay) if s.ema_decay else None

    named = dict(model.named_parameters()) | {f"trainer.{k}": v for k, v in trainer.named_parameters()}
    by_id = {id(p): n for n, p in named.items()}
    optimizers = {name: adamw([(by_id[id(p)], p) for p in params], s)
                  for name, params in trainer.optimizer_params(model).items()}
    scaler = torch.amp.GradScaler(ctx.device.type, enabled=s.precision == "fp16")
    start_step, best = 0, {"value": None, "step": None}
    seed_everything(seed * 1_000_003 + ctx.rank)  # each rank its own stream from here on

    if latest is not None:
        ckpt.load_weights(model, latest / "model.safetensors")
        ckpt.load_weights(trainer, latest / "trainer.safetensors")
        if ema is not None and (latest / "model_ema.safetensors").is_file():
            ckpt.load_weights(ema.model, latest / "model_ema.safetensors")
        state, rng = ckpt.load_training_state(latest, ctx.rank)
        for name, opt in optimizers.items():
            opt.load_state_dict(state["optimizers"][name])
        scaler.load_state_dict(state["scaler"])
        start_step, best = state["step"], state["best"]
        if rng is not None:
            from tokcore.runtime.state import set_rng_state

            set_rng_state(rng)
        log.message(f"resumed from {latest} at step {start_step}")

    collate = Collate(model.modality)
    sampler = StepBatchSampler(len(train_set), s.batch_size, s.grad_accum, ctx.rank, ctx.world_size, seed,
                               start_step=start_step)
    # The loader gets its own generator: it must not draw from the global RNG, or a resumed
    # run would consume random numbers the uninterrupted run did not.
    loader = DataLoader(GuardedDataset(train_set), batch_sampler=sampler, collate_fn=collate, num_workers=s.num_workers,
                        pin_memory=ctx.device.type == "cuda", generator=torch.Generator().manual_seed(seed),
                        persistent_workers=s.num_workers > 0)
    batches = iter(loader)

    ddp = model
    if ctx.distributed:
        from torch.nn.parallel import DistributedDataParallel

        ddp = DistributedDataParallel(model, device_ids=[ctx.device] if ctx.device.type == "cuda" else None,
                                      broadcast_buffers=False)  # quantizers sync their own state
    pm, _ = plugin_manager()
    run_info = Run(config, run_dir, model, ctx, start_step)
    pm.hook.tokcore_train_start(run=run_info)
    autocast = mixed_precision(ctx.device, s.precision)
    meta = tokenizer_meta(model, config)
    failed_log = run_dir / f"failed_samples.rank{ctx.rank}.jsonl"
    metrics: dict[str, float] = {}
    log.advance(start_step)

    def save(step: int) -> None:
        state = {"step": step, "best": best, "scaler": scaler.state_dict(),
                 "optimizers": {n: o.state_dict() for n, o in optimizers.items()}}
        path = ckpt.save_checkpoint(run_dir, step, ctx, model=model, ema=ema.model if ema else None,
                                    trainer=trainer, state=state, tokenizer_meta=meta, config_text=dump(config))
        if ctx.is_main:
            ckpt.prune(run_dir, s.keep_last, {best["step"]} if best["step"] is not None else set())
            pm.hook.tokcore_checkpoint_saved(run=run_info, step=step, path=str(path))

    def evaluate_all(step: int) -> dict[str, float]:
        out = {f"val/{k}": v for k, v in evaluate(model, trainer.loss, _val_batches(val_set, s, ctx, collate), ctx, autocast).items()}
        if ema is not None:
            out.update({f"val_ema/{k}": v for k, v in
                        evaluate(ema.model, trainer.loss, _val_batches(val_set, s, ctx, collate), ctx, autocast).items()})
        return out

    def write_samples(step: int) -> None:
        if not ctx.is_main:
            return
        shown = ema.model if ema is not None else model
        batch = next(_val_batches(val_set, TrainSettings(batch_size=min(8, len(val_set)), eval_batches=1),
                                  Context(device=ctx.device), collate), None)
        if batch is not None:
            write_reconstructions(shown, batch["raw"], samples_path(run_dir, step))

    try:
        for step in range(start_step, s.steps):
            lr = learning_rate(step, s)
            for opt in optimizers.values():
                for g in opt.param_groups:
                    g["lr"] = lr
            _set_train_mode(model, s.freeze)
            micro = []
            for _ in range(s.grad_accum):
                batch = next(batches)
                if batch["failed"]:
                    with open(failed_log, "a", encoding="utf-8") as f:
                        f.writelines(json.dumps({"step": step, **x}) + "\n" for x in batch["failed"])
                if batch["input"] is not None:  # None: every sample of it failed (recorded above)
                    micro.append(to_device(batch, ctx.device))
            if any_rank(not micro, ctx):  # all ranks skip together, or the others would wait in all-reduce
                log.message(f"step {step}: a rank has no loadable sample in this step's batch; step skipped")
                continue
            if s.multires:
                lo, hi, inc = s.multires
                size = random.Random(seed * 7919 + step).randrange(lo, hi + 1, inc)
                micro = [resize_batch(b, size) for b in micro]
            step_metrics: dict[str, float] = {}
            diverged, stepped = False, False
            for name, opt in optimizers.items():
                opt.zero_grad(set_to_none=True)
                sits_out = False
                for m, batch in enumerate(micro):
                    sync = contextlib.nullcontext() if (m == len(micro) - 1 or ddp is model) else ddp.no_sync()
                    with sync:
                        with autocast:
                            out = trainer.training_step(ddp, batch, step, optimizer=name)
                        # A loss without a graph sits this optimizer out for the step (a GAN
                        # discriminator before its start step): no backward, no update.
                        sits_out = not out.loss.requires_grad
                        if not sits_out:
                            scaler.scale(out.loss.float() / len(micro)).backward()
                    diverged |= not bool(torch.isfinite(out.loss.detach()))
                    key = "loss" if len(optimizers) == 1 else f"loss/{name}"
                    step_metrics[key] = step_metrics.get(key, 0.0) + float(out.loss.detach()) / len(micro)
                    for k, v in out.metrics.items():
                        step_metrics[k] = step_metrics.get(k, 0.0) + float(v) / len(micro)
                if any_rank(diverged, ctx):
                    good = ckpt.latest_checkpoint(run_dir)
                    raise TrainingDiverged(
                        f"step {step}: the loss is {float(out.loss.detach())} on at least one rank; stopped before the update. "
                        f"Last good checkpoint: {good or 'none'}. Lower train.lr, set train.clip_grad, or use fp32")
                if sits_out:
                    continue
                if ctx.distributed:  # DDP averages the model's gradients, not the trainer's own
                    all_reduce_grads([p for p in trainer.parameters() if p.grad is not None], ctx)
                if s.clip_grad is not None:
                    scaler.unscale_(opt)
                    torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], s.clip_grad)
                scaler.step(opt)
                stepped = True
            if stepped:
                scaler.update()
            if ema is not None:
                ema.update(model)
            done = step + 1
            log.advance(done)
            if done % s.log_every == 0 or done == s.steps:
                metrics = all_reduce_mean(step_metrics, ctx) | {"lr": lr}
                log.write(done, metrics)
                pm.hook.tokcore_train_step_end(run=run_info, step=done, metrics=metrics)
            run_info.step = done
            if (s.eval_every and done % s.eval_every == 0) or done == s.steps:
                ev = evaluate_all(done)
                metrics = {**metrics, **ev}
                log.write(done, ev)
                log.message(f"step {done}: " + ", ".join(f"{k} {v:.4g}" for k, v in ev.items()))
                if s.keep_best is not None:
                    if s.keep_best not in ev:
                        raise ConfigError(f"'{s.keep_best}' is not an evaluation metric; choose one of "
                                          f"{', '.join(sorted(ev))}", key="train.keep_best")
                    if best["value"] is None or ev[s.keep_best] < best["value"]:
                        best = {"value": ev[s.keep_best], "step": done}
            if (s.samples_every and done % s.samples_every == 0) or done == s.steps:
                write_samples(done)
            if (s.save_every and done % s.save_every == 0) or done == s.steps:
                save(done)
    finally:
        log.close()
    run_info.metrics = metrics
    pm.hook.tokcore_train_end(run=run_info, metrics=metrics)
    return metrics
