"""Evaluation on the held-out split: losses, the modality's metrics in raw units, and codebook
usage, perplexity and dead codes measured over the whole evaluation (not one batch)."""

from __future__ import annotations

import math
from typing import Any, Iterable

import torch
import torch.distributed as dist

from tokcore.interfaces.modality import denormalize_with
from tokcore.tokenizer import Tokenizer, _eval
from tokcore.runtime.distributed import Context


def codebook_stats(counts: torch.Tensor) -> dict[str, float]:
    """counts: (positions, K) code histograms -> usage, perplexity, dead codes (mean over positions)."""
    total = counts.sum(-1, keepdim=True).clamp_min(1)
    p = counts / total
    entropy = -(p * torch.log(p.clamp_min(1e-12))).sum(-1)
    used = (counts > 0).sum(-1).double()
    k = counts.shape[-1]
    return {"usage": float((used / k).mean()), "perplexity": float(entropy.exp().mean()),
            "dead_codes": float((k - used).mean())}


def codebook_usage(indices: torch.Tensor, codebook_size: int, index_shape: tuple[int, ...] | list[int] = ()) -> dict[str, Any]:
    """Usage, codes used, perplexity and dead codes of a set of token indices.

    With a non-empty `index_shape` (the quantizer's, e.g. `(stages,)` of a residual
    quantizer) the trailing axes of `indices` address separate codebooks: each gets its own
    histogram, `used_per_codebook` lists their codes in use, and usage, perplexity and dead
    codes are means over codebooks (pooling them would count stage 2's codes as stage 1's).
    """
    codebooks = math.prod(index_shape)
    flat = indices.reshape(-1, codebooks)
    counts = torch.stack([torch.bincount(flat[:, c], minlength=codebook_size) for c in range(codebooks)]).double()
    used = (counts > 0).sum(-1)
    return {**codebook_stats(counts), "used": int(used.min()), "used_per_codebook": used.tolist()}


@torch.no_grad()
def evaluate(model: Tokenizer, loss: torch.nn.Module, batches: Iterable[dict[str, Any]], ctx: Context,
             autocast: Any) -> dict[str, float]:
    q = model.quantizer
    positions = math.prod(q.index_shape) if q.index_shape else 1
    counts = torch.zeros(positions, q.codebook_size, dtype=torch.float64, device=ctx.device) if q.is_discrete else None
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
            if model.modality is not None and batch.get("raw") is not None:
                recon_raw = denormalize_with(model.modality, out.recon.float(), batch.get("side"))
                parts.update(model.modality.metrics(recon_raw, batch["raw"]))
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + float(v) * b
            n += b
            if counts is not None:
                idx = out.quant.indices.reshape(-1, positions)
                for j in range(positions):
                    counts[j] += torch.bincount(idx[:, j], minlength=q.codebook_size).double()
    totals = torch.tensor([float(n)] + [sums[k] for k in sorted(sums)], dtype=torch.float64, device=ctx.device)
    if ctx.distributed:
        dist.all_reduce(totals)
        if counts is not None:
            dist.all_reduce(counts)
    n_all = max(totals[0].item(), 1.0)
    result = {k: v / n_all for k, v in zip(sorted(sums), totals[1:].tolist())}
    if counts is not None:
        result.update({f"codebook/{k}": v for k, v in codebook_stats(counts).items()})
    return result
