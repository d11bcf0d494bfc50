"""Steps/s of tokcore's training loop against a bare PyTorch loop on the same model and data.

    python benchmarks/train_loop.py [--steps 200] [--size 32] [--batch 16]

Both train the same conv2d + FSQ tokenizer on the same random 3x32x32 images with AdamW, one
process, fp32. The bare loop is what a user would write by hand: a DataLoader, forward, MSE,
backward, step. tokcore's time is read from its own metrics.jsonl between two logged steps,
so set-up, the final evaluation and the checkpoint are excluded on both sides. The two run
in adjacent pairs, alternating which goes first, and the ratio is the median over pairs.
Target: overhead at most 5%.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from tokcore.config.spec import RunSpec
from tokcore.tokenizer import build_tokenizer
from tokcore.train.launch import run
from tokcore.train.log import read_metrics

TINY = {"base_channels": 32, "channel_mult": [1, 2, 2], "num_res_blocks": 1, "mid_attention": False}


def config(data: Path, steps: int, batch: int) -> dict:
    return {"tokcore": 1, "seed": 0,
            "model": {"encoder": {"name": "conv2d", "in_channels": 3, "out_dim": 4, **TINY},
                      "quantizer": {"name": "fsq", "levels": [8, 5, 5, 5]},
                      "decoder": {"name": "conv2d", "in_dim": 4, "out_channels": 3, **TINY}},
            "data": {"name": "arrays", "path": str(data), "val_fraction": 0.05},
            "train": {"steps": steps, "batch_size": batch, "lr": 1e-3, "log_every": 10, "clip_grad": None,
                      "eval_batches": 1, "device": "cpu"}}


def bare_loop(cfg: dict, images: np.ndarray, steps: int, warmup: int) -> float:
    """Seconds per step of a hand-written loop over the same model and data."""
    torch.manual_seed(0)
    model = build_tokenizer(cfg["model"], None, images.shape[1:])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    data = torch.utils.data.TensorDataset(torch.from_numpy(images))
    loader = torch.utils.data.DataLoader(data, batch_size=cfg["train"]["batch_size"], shuffle=True, drop_last=True)
    it, t0 = iter(loader), None
    for step in range(steps):
        if step == warmup:
            t0 = time.perf_counter()
        try:
            (x,) = next(it)
        except StopIteration:
            it = iter(loader)
            (x,) = next(it)
        out = model(x)
        loss = F.mse_loss(out.recon, x) + sum(out.quant.losses.values(), torch.zeros(()))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return (time.perf_counter() - t0) / (steps - warmup)


def tokcore_loop(spec: RunSpec, tmp: Path, steps: int, warmup: int) -> float:
    out = tmp / f"run-{time.time_ns()}"
    run(spec, out)
    rows = {r["step"]: r["time"] for r in read_metrics(out) if "loss" in r}
    return (rows[steps] - rows[warmup]) / (steps - warmup)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="tokcore-bench-"))
    images = np.random.default_rng(0).uniform(size=(512, 3, args.size, args.size)).astype(np.float32)
    np.save(tmp / "images.npy", images)
    spec = load_resolved(config(tmp / "images.npy", args.steps, args.batch), tmp)
    cfg = dict(spec.config)
    warmup = 20
    bare, ours = [], []
    for i in range(args.repeats):  # adjacent pairs, alternating which goes first: a pair sees one machine load
        first_bare = i % 2 == 0
        if first_bare:
            bare.append(bare_loop(cfg, images, args.steps, warmup))
        ours.append(tokcore_loop(spec, tmp, args.steps, warmup))
        if not first_bare:
            bare.append(bare_loop(cfg, images, args.steps, warmup))
    ratios = sorted(b / o for b, o in zip(bare, ours))
    median = ratios[len(ratios) // 2]
    print(f"model: conv2d + fsq [8,5,5,5], {args.size}x{args.size}, batch {args.batch}, fp32, 1 process, "
          f"{args.threads} thread(s), {args.steps - warmup} timed steps, {args.repeats} alternating pairs")
    print(f"{'loop':12s} {'best ms/step':>13s} {'runs (ms/step)':s}")
    print(f"{'bare torch':12s} {min(bare) * 1e3:13.2f}  " + ", ".join(f"{b * 1e3:.1f}" for b in bare))
    print(f"{'tokcore':12s} {min(ours) * 1e3:13.2f}  " + ", ".join(f"{o * 1e3:.1f}" for o in ours))
    print(f"tokcore / bare steps/s: median of pairs {median:.3f}, of bests {min(bare) / min(ours):.3f} "
          f"(target >= 0.95, i.e. overhead <= 5%)")


def load_resolved(cfg: dict, tmp: Path) -> RunSpec:
    """The config as `tokcore train` resolves it (defaults filled in)."""
    import yaml

    path = tmp / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return RunSpec.load(path)


if __name__ == "__main__":
    main()
