"""`tokcore train --dry-run`: build everything, run one batch on this process, print the plan."""

from __future__ import annotations

import math
import time
from typing import Any

import torch

from tokcore import registry
from tokcore.batch import Collate
from tokcore.train.fit import sample_shape
from tokcore.train.loop import (DEFAULT_LOSS, DEFAULT_TRAINER, build_data, build_model, fits, seed_everything,
                                 settings_of)


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def dry_run(config: dict[str, Any], nproc: int = 1) -> str:
    s = settings_of(config)
    seed_everything(int(config.get("seed", 0)))
    train_set, val_set = build_data(config, "train"), build_data(config, "val")
    first = train_set[0]
    if fits(config):
        return _fit_plan(config, train_set, val_set)
    model = build_model(config, tuple(torch.as_tensor(first["input"]).shape))
    trainer = registry.build("trainer", config.get("trainer", DEFAULT_TRAINER))
    trainer.loss = registry.build("loss", config.get("loss", DEFAULT_LOSS))
    batch = Collate(model.modality)([train_set[i] for i in range(min(s.batch_size, len(train_set)))])
    t0 = time.perf_counter()
    out = trainer.training_step(model.train(), batch, 0)
    out.loss.backward()
    seconds = time.perf_counter() - t0

    info = model.info()
    q = model.quantizer
    values = math.prod(info["input_shape"])
    raw_bits = 8 if torch.as_tensor(first["input"]).dtype == torch.uint8 else 32
    tokens = info["tokens_per_sample"]
    m = config["model"]
    lines = [
        f"data      {config['data']['name']}: {len(train_set)} train / {len(val_set)} val samples of shape {tuple(info['input_shape'])}",
        f"encoder   {m['encoder']['name']:14s} {_count(model.encoder):>12,d} parameters",
        f"quantizer {m['quantizer']['name']:14s} {_count(model.quantizer):>12,d} parameters, "
        + (f"codebook {q.codebook_size}" + (f" x {list(q.index_shape)}" if q.index_shape else "") if q.is_discrete else "continuous"),
        f"decoder   {m['decoder']['name']:14s} {_count(model.decoder):>12,d} parameters",
        f"tokens    grid {tuple(info['token_grid'])} = {tokens} per sample, {values / tokens:.1f} input values per token",
    ]
    if q.is_discrete:
        bits = info["bits_per_sample"]
        lines.append(f"bits      {bits:.0f} per sample ({q.bits_per_token:.1f} per token); "
                     f"compression {values * raw_bits / bits:.1f}x against {raw_bits}-bit input")
    lines += [
        f"training  {s.steps} steps x global batch {s.batch_size * s.grad_accum * nproc} "
        f"({nproc} process(es) x {s.batch_size} x {s.grad_accum} accumulation), lr {s.lr:g} {s.schedule}"
        f"{f' after {s.warmup_steps} warmup' if s.warmup_steps else ''}, {s.precision}"
        f"{f', EMA {s.ema_decay}' if s.ema_decay else ''}",
        f"one step  loss {float(out.loss.detach()):.4g} on {len(batch['keys'])} samples in {seconds:.2f} s (this process, CPU)",
    ]
    return "\n".join(lines)


def _fit_plan(config: dict[str, Any], train_set: Any, val_set: Any) -> str:
    """The plan of a one-pass fit: what is fitted on what (the fit itself is the run)."""
    model = build_model(config, sample_shape(train_set[0]["input"]))
    trainer = config.get("trainer", DEFAULT_TRAINER)
    registry.build("trainer", trainer)  # parameters checked
    m = config["model"]
    parts = [f"{k:9s} {m[k]['name']:14s} {_count(getattr(model, k)):>12,d} parameters"
             for k in ("encoder", "quantizer", "decoder") if k in m]
    return "\n".join([
        f"data      {config['data']['name']}: {len(train_set)} train / {len(val_set)} val samples",
        *parts,
        f"training  trainer '{trainer['name']}' fits the model in one pass over the train split "
        "(no gradient steps), on one process; the result is checkpoints/step-1",
    ])
