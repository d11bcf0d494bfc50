"""Evaluate a trained gaze tokenizer on its held-out split against a classical codec.

    tokcore gaze-report --run runs/gaze-quick

Steps: load the tokenizer from the run (`tokcore.load_tokenizer`), build the run's dataset
with `split: val`, tokenize every clip, decode the tokens, and measure the error over valid
frames (normalized image units, and degrees of visual angle when the modality records a
field of view). The baseline is a DCT along time over x and y with exactly the tokenizer's
bits per clip (`tokcore.api.DCTCodec`), invalid frames filled by linear interpolation first, its
(keep, bits) split chosen on the training split. Writes `<output>/metrics.json`,
`<output>/gaze_val.png`; the tokens are in the roundtrip's token store.

Tokens and reconstructions come from the real pipeline (`tokcore.api.roundtrip`): the
`tokcore tokenize` job writes `<run>/roundtrip-<split>/tokens`, the `tokcore decode` job
`<run>/roundtrip-<split>/decoded`; finished ones are reused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from tok_gaze.modality import interpolate_gaps
from tokcore.api import (
    DCTCodec,
    codebook_usage,
    report_inputs,
    save_report,
    token_bits,
    usage_line,
)


def fill_gaps(x: np.ndarray) -> np.ndarray:
    """`(N, T, 2)` with NaN frames -> linearly interpolated across gaps, held at the ends
    (a clip without any valid frame becomes the image centre)."""
    return interpolate_gaps(torch.from_numpy(np.asarray(x, dtype=np.float64))).numpy()


def dct_baseline(train: np.ndarray, bits: int) -> DCTCodec:
    """The DCT codec of `bits` bits per clip, its (keep, bits) chosen for the lowest mean
    error over valid frames of `train`."""
    valid = np.isfinite(train).all(-1)

    def error(decoded: np.ndarray, _: np.ndarray) -> float:
        return float(np.linalg.norm(decoded - train, axis=-1)[valid].mean())

    return DCTCodec.best(fill_gaps(train), bits, error)


def report(run: str | Path, output: str | Path | None = None, split: str = "val") -> dict[str, Any]:
    """Evaluate the run's tokenizer and the DCT baseline on `split`; print and save the table."""
    r = report_inputs(run, output, split)
    tok, info, bits, out, train = r.tokenizer, r.info, r.bits, r.out, r.train
    clips, decoded = r.roundtrip.inputs, r.roundtrip.decoded
    indices = torch.from_numpy(r.roundtrip.tokens.astype(np.int64))
    recon = torch.from_numpy(decoded).float()
    codec = dct_baseline(train.numpy(), bits)
    dct = torch.from_numpy(np.clip(codec(fill_gaps(clips.numpy())), 0.0, 1.0)).float()

    rows = {name: tok.modality.metrics(rec, clips) for name, rec in (("tokenizer", recon), ("dct", dct))}
    usage = codebook_usage(indices, info["codebook_size"], info["index_shape"])
    result = {"run": str(run), "split": split, "clips": len(clips), "frames": int(clips.shape[1]),
              "valid_frames": float(torch.isfinite(clips).all(-1).double().mean()),
              "fov": tok.modality.fov, "tokens_per_clip": info["tokens_per_sample"],
              "codebook_size": info["codebook_size"], "index_shape": info["index_shape"], "bits_per_clip": bits,
              "dct": {"keep": codec.keep, "bits": codec.bits, "bits_per_clip": codec.bits_per_clip(2)},
              "metrics": rows, "codebook": usage}

    out.mkdir(parents=True, exist_ok=True)
    from tok_gaze.plot import plot_gaze

    plot = plot_gaze(clips.numpy(), recon.numpy(), out / "gaze_val.png", extra={"DCT": dct.numpy()})
    save_report(out, result, format_table(result), plot)
    return result


def format_table(r: dict[str, Any]) -> str:
    t, d = r["metrics"]["tokenizer"], r["metrics"]["dct"]
    dct_name = f"DCT ({r['dct']['keep']} coef x {r['dct']['bits']} bit x 2 ch)"
    lines = [f"gaze: {r['clips']} held-out clips of {r['frames']} frames ({100 * r['valid_frames']:.0f}% valid); "
             f"{token_bits(r['tokens_per_clip'], r['index_shape'], r['codebook_size'])} = {r['bits_per_clip']} bits per clip for both codecs",
             f"{'':<26}{'tokenizer':>12}  {dct_name}",
             f"{'error (normalized units)':<26}{t['error']:>12.4f}  {d['error']:>10.4f}"]
    if "error_deg" in t:
        lines.append(f"{'error (deg visual angle)':<26}{t['error_deg']:>12.3f}  {d['error_deg']:>10.3f}")
    lines.append(usage_line(r["codebook"], r["codebook_size"]))
    return "\n".join(lines)

