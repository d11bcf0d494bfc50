"""Evaluate a trained depth tokenizer on its held-out split against a classical codec.

    tokcore depth-report --run runs/depth-quick

Steps: `split` of the run's dataset goes through the real pipeline (`tokcore.api.roundtrip`:
the `tokcore tokenize` job into `<run>/roundtrip-<split>/tokens`, the `tokcore decode` job
into `<run>/roundtrip-<split>/decoded`; finished ones are reused), and the decoded depths are
scored against the inputs on valid pixels only (AbsRel, RMSE, log RMSE, delta < 1.25^k).

The baseline gets the tokenizer's bits per sample, plus those of any per-image normalization
statistics stored beside the tokens: the log depth averaged over the valid pixels of each
cell of the token grid, each cell's value quantized uniformly (over the range log depth takes
on the training split) with that budget's share of bits, then upsampled bilinearly. Writes `<output>/metrics.json` and `<output>/depth_val.png` (input,
reconstruction, error, holes in grey).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from tokcore.api import codebook_usage, report_inputs, save_report, token_bits


class GridLogDepthCodec:
    """Log depth on a coarse grid, `bits` bits per cell: the equal-bits baseline.

    Args:
        grid: `(h, w)` cells per map (the tokenizer's token grid).
        bits: bits per cell.
        lo: log depth of the lowest quantization level.
        hi: log depth of the highest.
    """

    def __init__(self, grid: tuple[int, int], bits: int, lo: float, hi: float):
        if bits < 1:
            raise ValueError(f"need at least 1 bit per cell, got {bits}")
        self.grid, self.bits, self.lo, self.hi = grid, bits, lo, max(hi, lo + 1e-6)

    @classmethod
    def fit(cls, train: Tensor, valid: Tensor, grid: tuple[int, int], bits: int) -> "GridLogDepthCodec":
        """Levels spanning the 0.1-99.9 percentiles of the training split's valid log depths."""
        logs = train[valid].double().log().numpy()
        lo, hi = np.percentile(logs, [0.1, 99.9])
        return cls(grid, bits, float(lo), float(hi))

    def __call__(self, depth: Tensor, valid: Tensor) -> Tensor:
        """Encode and decode depths `(B, 1, H, W)`; a cell without valid pixels takes its
        map's mean (it costs its bits all the same)."""
        v = valid.double()
        logd = torch.where(valid, depth.double().clamp_min(1e-6).log(), torch.zeros_like(v))
        weight = F.adaptive_avg_pool2d(v, self.grid)
        cells = F.adaptive_avg_pool2d(logd * v, self.grid) / weight.clamp_min(1e-12)
        mean = (logd * v).sum((1, 2, 3), keepdim=True) / v.sum((1, 2, 3), keepdim=True).clamp_min(1)
        cells = torch.where(weight > 0, cells, mean)
        levels = 2**self.bits - 1
        q = torch.round((cells.clamp(self.lo, self.hi) - self.lo) / (self.hi - self.lo) * levels)
        cells = self.lo + q / levels * (self.hi - self.lo)
        return F.interpolate(cells, size=depth.shape[-2:], mode="bilinear", align_corners=False).exp().float()


def report(run: str | Path, output: str | Path | None = None, split: str = "val") -> dict[str, Any]:
    """Evaluate the run's tokenizer and the grid baseline on `split`; print and save the table."""
    r = report_inputs(run, output, split)
    tok, info, bits, out = r.tokenizer, r.info, r.bits, r.out
    depth = tok.modality
    inputs = r.roundtrip.inputs
    recon = torch.from_numpy(r.roundtrip.decoded).float()
    valid = depth.valid_mask(inputs)

    grid = tuple(info["token_grid"])
    if len(grid) != 2:
        raise ValueError(f"the grid baseline needs a 2D token grid, this tokenizer has {list(grid)}")
    side = depth.side_info(inputs[:1])
    side_bits = 32 * len(side) if side else 0  # float32 statistics stored beside the tokens
    bits_per_cell = int(math.floor((bits + side_bits) / math.prod(grid)))
    codec = GridLogDepthCodec.fit(r.train, depth.valid_mask(r.train), grid, bits_per_cell)
    baseline = codec(inputs, valid)

    rows = {"tokenizer": depth.metrics(recon, inputs), "grid": depth.metrics(baseline, inputs)}
    usage = codebook_usage(torch.from_numpy(r.roundtrip.tokens.astype(np.int64)), info["codebook_size"])
    result = {"run": str(run), "split": split, "samples": len(inputs), "shape": list(inputs.shape[1:]),
              "valid_pixels": float(valid.double().mean()), "normalization": depth.normalization,
              "depth_range": depth.depth_range, "tokens_per_sample": info["tokens_per_sample"],
              "token_grid": list(grid), "codebook_size": info["codebook_size"], "index_shape": info["index_shape"],
              "bits_per_sample": bits, "side_info_bits": side_bits,
              "baseline": {"grid": list(grid), "bits_per_cell": bits_per_cell,
                           "bits_per_sample": bits_per_cell * math.prod(grid)},
              "metrics": rows, "codebook": usage}

    out.mkdir(parents=True, exist_ok=True)
    from tok_depth.plot import plot_depth

    plot = plot_depth(inputs[:, 0].numpy(), recon[:, 0].numpy(), valid[:, 0].numpy(), out / "depth_val.png",
                      titles=r.roundtrip.keys)
    save_report(out, result, format_table(result), plot)
    return result


def format_table(r: dict[str, Any]) -> str:
    t, g = r["metrics"]["tokenizer"], r["metrics"]["grid"]
    b = r["baseline"]
    h, w = r["shape"][-2:]
    side = f" + {r['side_info_bits']} bits of per-image normalization" if r["side_info_bits"] else ""
    grid_name = f"grid {b['grid'][0]}x{b['grid'][1]} x {b['bits_per_cell']} bit"
    lines = [f"depth: {r['samples']} held-out {h}x{w} maps ({100 * r['valid_pixels']:.0f}% valid pixels; "
             f"'{r['normalization']}' normalization); "
             f"{token_bits(r['tokens_per_sample'], r['index_shape'], r['codebook_size'])} = {r['bits_per_sample']} "
             f"bits per map{side}, {(r['bits_per_sample'] + r['side_info_bits']) / (h * w):.3f} bits per pixel",
             f"{'valid pixels only':<20}{'tokenizer':>12}  {grid_name:>22}"]
    for key, name, fmt in (("abs_rel", "AbsRel", ".4f"), ("rmse", "RMSE", ".4f"), ("log_rmse", "log RMSE", ".4f"),
                           ("delta1", "delta < 1.25", ".4f"), ("delta2", "delta < 1.25^2", ".4f"),
                           ("delta3", "delta < 1.25^3", ".4f")):
        lines.append(f"{name:<20}{t[key]:>12{fmt}}  {g[key]:>22{fmt}}")
    c = r["codebook"]
    lines.append(f"codebook usage on held-out tokens: {100 * c['usage']:.1f}% ({c['used']}/{r['codebook_size']}), "
                 f"perplexity {c['perplexity']:.1f}")
    return "\n".join(lines)
