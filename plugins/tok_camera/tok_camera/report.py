"""Evaluate a trained camera tokenizer on its held-out split against a classical codec.

    tokcore camera-report --run runs/camera-quick

Steps: load the tokenizer from the run (`tokcore.load_tokenizer`), build the run's dataset
with `split: val`, tokenize every clip, decode the tokens, and measure the reconstruction
(ATE after rigid alignment, RTE, RRE, per-frame rotation error). The baseline is a DCT along
time over the same clips, with exactly the tokenizer's bits per clip (`tokcore.api.DCTCodec`):
each clip relative to its first frame as rotation vector + translation (6 channels), its
(keep, bits) split chosen on the training split. Writes `<output>/metrics.json`,
`<output>/camera_val.png`; the tokens are in the roundtrip's token store.

Tokens and reconstructions come from the real pipeline (`tokcore.api.roundtrip`): the
`tokcore tokenize` job writes `<run>/roundtrip-<split>/tokens`, the `tokcore decode` job
`<run>/roundtrip-<split>/decoded`; finished ones are reused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from tok_camera.geometry import (
    matrix_to_rotvec,
    relative_to_first,
    rotvec_to_matrix,
    trajectory_errors,
)
from tokcore.api import (
    DCTCodec,
    codebook_usage,
    report_inputs,
    save_report,
    token_bits,
    usage_line,
)

MM = 1000.0


def to_rotvec_translation(poses: torch.Tensor) -> np.ndarray:
    """`(N, T, 4, 4)` -> `(N, T, 6)`: relative to the first frame, rotation vector + translation."""
    rel = relative_to_first(poses.double())
    return torch.cat([matrix_to_rotvec(rel[..., :3, :3]), rel[..., :3, 3]], -1).numpy()


def from_rotvec_translation(x: np.ndarray) -> torch.Tensor:
    v = torch.from_numpy(x)
    poses = torch.zeros(*v.shape[:-1], 4, 4, dtype=torch.float64)
    poses[..., :3, :3] = rotvec_to_matrix(v[..., :3])
    poses[..., :3, 3] = v[..., 3:6]
    poses[..., 3, 3] = 1.0
    return poses


def dct_baseline(train: torch.Tensor, bits: int) -> tuple[DCTCodec, np.ndarray]:
    """The DCT codec of `bits` bits per clip fitted on `train`, with the per-channel scales
    that make its choice of (keep, bits) weigh rotation and translation alike."""
    x = to_rotvec_translation(train)
    scale = x.reshape(-1, 6).std(0) + 1e-9
    return DCTCodec.best(x / scale, bits), scale


def report(run: str | Path, output: str | Path | None = None, split: str = "val") -> dict[str, Any]:
    """Evaluate the run's tokenizer and the DCT baseline on `split`; print and save the table."""
    r = report_inputs(run, output, split)
    info, bits, out, train = r.info, r.bits, r.out, r.train
    clips, decoded = r.roundtrip.inputs, r.roundtrip.decoded
    indices = torch.from_numpy(r.roundtrip.tokens.astype(np.int64))
    recon = torch.from_numpy(decoded).double()
    codec, scale = dct_baseline(train, bits)
    dct = from_rotvec_translation(codec(to_rotvec_translation(clips) / scale) * scale)

    rows = {}
    for name, rec in (("tokenizer", recon), ("dct", dct)):
        errs = trajectory_errors(rec, clips.double())
        rows[name] = {"ate_mm": float(errs["ate"].mean()) * MM, "rte_mm": float(errs["rte"].mean()) * MM,
                      "rre_deg": float(errs["rre_deg"].mean()), "rot_deg": float(errs["rot_deg"].mean())}
    usage = codebook_usage(indices, info["codebook_size"], info["index_shape"])
    result = {"run": str(run), "split": split, "clips": len(clips), "frames": int(clips.shape[1]),
              "tokens_per_clip": info["tokens_per_sample"], "codebook_size": info["codebook_size"],
              "index_shape": info["index_shape"],
              "bits_per_clip": bits, "dct": {"keep": codec.keep, "bits": codec.bits,
                                             "bits_per_clip": codec.bits_per_clip(6)},
              "metrics": rows, "codebook": usage}

    out.mkdir(parents=True, exist_ok=True)
    from tok_camera.plot import plot_trajectories

    plot = plot_trajectories(relative_to_first(clips.double()).numpy(), relative_to_first(recon).numpy(),
                             out / "camera_val.png", extra={"DCT": relative_to_first(dct).numpy()})
    save_report(out, result, format_table(result), plot)
    return result


def format_table(r: dict[str, Any]) -> str:
    t, d = r["metrics"]["tokenizer"], r["metrics"]["dct"]
    dct_name = f"DCT ({r['dct']['keep']} coef x {r['dct']['bits']} bit x 6 ch)"
    lines = [f"camera: {r['clips']} held-out clips of {r['frames']} frames; "
             f"{token_bits(r['tokens_per_clip'], r['index_shape'], r['codebook_size'])} = {r['bits_per_clip']} bits per clip for both codecs",
             f"{'':<22}{'tokenizer':>12}  {dct_name}"]
    for key, label in (("ate_mm", "ATE (mm, aligned)"), ("rte_mm", "RTE (mm/frame)"), ("rre_deg", "RRE (deg/frame)"),
                       ("rot_deg", "rotation error (deg)")):
        lines.append(f"{label:<22}{t[key]:>12.3f}  {d[key]:>10.3f}")
    lines.append(usage_line(r["codebook"], r["codebook_size"]))
    return "\n".join(lines)

