"""`tokcore train --dry-run`: build everything, run one batch on this process, print the plan."""

from __future__ import annotations

import math
import time

import torch

from tokcore.batch import Collate, GuardedDataset
from tokcore.config.spec import RunSpec
from tokcore.errors import InputError
from tokcore.train.build import Parts, build_parts, first_loadable, is_fit
from tokcore.train.launch import check_device
from tokcore.train.sampler import check_global_batch


def _count(module: torch.nn.Module | None) -> int:
    return sum(p.numel() for p in module.parameters()) if module is not None else 0


def dry_run(spec: RunSpec, nproc: int = 1) -> str:
    check_device(spec)
    parts = build_parts(spec)
    if is_fit(spec):
        return _fit_plan(spec, parts)
    s, model, train_set = spec.train, parts.model, parts.train_set
    if s.max_tokens is None:  # packed batches: the token-budget sampler checks its own step when training
        check_global_batch(len(train_set), s.batch_size, s.grad_accum, nproc)
    first = first_loadable(train_set)
    guarded = GuardedDataset(train_set)
    batch = Collate(model.modality)([guarded[i] for i in range(min(s.batch_size, len(train_set)))])
    if batch["input"] is None:
        raise InputError(f"no sample of the first batch can be used: {batch['failed'][0]['error']}")
    t0 = time.perf_counter()
    model.train()
    for part in s.freeze:  # as the loop does: frozen parts take no gradient and stay in eval mode
        getattr(model, part).requires_grad_(False).eval()
    out = parts.trainer.training_step(model, batch, 0)
    out.loss.backward()
    seconds = time.perf_counter() - t0

    info = model.info()
    q = model.quantizer
    values = math.prod(info["input_shape"])
    raw_bits = 8 if torch.as_tensor(first["input"]).dtype == torch.uint8 else 32
    tokens = info["tokens_per_sample"]
    m = spec.model
    lines = [
        f"data      {spec.data.name}: {len(train_set)} train / {len(parts.val_set)} val samples of shape {tuple(info['input_shape'])}",
        f"encoder   {m.encoder.name:14s} {_count(model.encoder):>12,d} parameters",
        f"quantizer {m.quantizer.name:14s} {_count(model.quantizer):>12,d} parameters, "
        + (f"codebook {q.codebook_size}" + (f" x {list(q.index_shape)}" if q.index_shape else "") if q.is_discrete else "continuous"),
        f"decoder   {m.decoder.name:14s} {_count(model.decoder):>12,d} parameters",
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
    for f in batch["failed"]:
        lines.append(f"skipped   {f['error']}")
    if len(parts.val_set) == 0:
        lines.append("no eval   the val split is empty: the run trains and saves without evaluation")
    return "\n".join(lines)


def _fit_plan(spec: RunSpec, parts: Parts) -> str:
    """The plan of a one-pass fit: what is fitted on what (the fit itself is the run)."""
    m = spec.model
    rows = [f"{k:9s} {c.name:14s} {_count(getattr(parts.model, k)):>12,d} parameters"
            for k, c in (("encoder", m.encoder), ("quantizer", m.quantizer), ("decoder", m.decoder)) if c is not None]
    return "\n".join([
        f"data      {spec.data.name}: {len(parts.train_set)} train / {len(parts.val_set)} val samples",
        *rows,
        f"training  trainer '{spec.trainer.name}' fits the model in one pass over the train split "
        "(no gradient steps), on one process; the result is checkpoints/step-1",
    ])
