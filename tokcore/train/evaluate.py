"""Evaluation on the held-out split: losses, the modality's metrics in raw units, and codebook
usage, perplexity and dead codes measured over the whole evaluation (not one batch)."""

from __future__ import annotations

from typing import Any, Iterable

import torch
import torch.distributed as dist

from tokcore.interfaces.modality import denormalize_with
from tokcore.metrics.codebook import CodeHistogram
from tokcore.runtime.distributed import Context
from tokcore.tokenizer import Tokenizer, _eval


@torch.no_grad()
def evaluate(model: Tokenizer, loss: torch.nn.Module, batches: Iterable[dict[str, Any]], ctx: Context,
             autocast: Any) -> dict[str, float]:
    q = model.quantizer
    codes = CodeHistogram(q.codebook_size, q.index_shape, ctx.device) if q.is_discrete else None
    sums: dict[str, float] = {}
    n = 0
    with _eval(model):
        for batch in batches:
            if batch["input"] is None:
                continue
            x, b = batch["input"], batch["input"].shape[0]
            with autocast:
                out = model(x)
            parts = {"loss": loss(out.recon.float(), x, batch.get("mask")).loss}
            parts.update({f"quantizer/{k}": v for k, v in out.quant.losses.items()})
            if batch.get("raw") is not None:
                recon_raw = denormalize_with(model.modality, out.recon.float(), batch.get("side"))
                parts.update(model.modality.metrics(recon_raw, batch["raw"]))
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + float(v) * b
            n += b
            if codes is not None:
                codes.add(out.quant.indices)
    totals = torch.tensor([float(n)] + [sums[k] for k in sorted(sums)], dtype=torch.float64, device=ctx.device)
    if ctx.distributed:
        dist.all_reduce(totals)
        if codes is not None:
            dist.all_reduce(codes.counts)
    if totals[0].item() == 0:  # every held-out sample failed: no figures rather than invented ones
        return {}
    n_all = totals[0].item()
    result = {k: v / n_all for k, v in zip(sorted(sums), totals[1:].tolist())}
    if codes is not None:
        result.update({f"codebook/{k}": v for k, v in codes.stats().items()})
    return result
