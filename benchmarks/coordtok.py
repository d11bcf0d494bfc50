"""CoordTok's training cost against clip length, next to core's `causal3d` on whole clips.

    python benchmarks/coordtok.py [--frames 16 32 64 128] [--steps 5] [--batch 2] [--size 32]

CoordTok (tok-coordtok) decodes `K` sampled patches per clip whatever the clip's length, so
its decoder-side cost should stay flat as T grows, while a convolutional video autoencoder
that reconstructs the whole clip (core's `causal3d`, T + 1 frames as its causal layout
needs) grows about linearly. For each T the script trains a few steps of each at the same
resolution and small widths, each configuration in a fresh process, and prints:

* step time: median seconds of a full optimizer step (forward, backward, AdamW);
* CoordTok's decoder side alone: median seconds of the decoder's forward and backward on
  the encoder's latents (the step split into encoder forward | decoder | encoder backward);
* peak memory: the process's peak resident set size (`ru_maxrss`) above its resident size
  after the model, optimizer and batch were built, i.e. what the training steps (activations,
  gradients, optimizer state) added. CPU torch has no allocator statistics, so this is
  measured from the OS; each configuration runs in its own process so the peaks do not mix.
  For the decoder side, a second process trains the decoder alone on fixed latents.

The growth column is the figure at T = last over T = first, measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import torch


def rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def coordtok_model(frames: int, size: int, k: int):
    from tokcore.api import build_tokenizer

    enc = {"name": "coordtok", "frames": frames, "size": size, "patch_t": 4, "patch": 8, "width": 64, "patch_depth": 2,
           "depth": 2, "num_heads": 4, "plane_t": 16, "plane_h": 8, "plane_w": 8, "query_patch": 4,
           "query_patch_t": 4, "out_dim": 4}
    dec = {"name": "triplane", "frames": frames, "size": size, "patch_t": 1, "patch": 4, "plane_t": 16, "plane_h": 8,
           "plane_w": 8, "width": 64, "depth": 2, "num_heads": 4, "query_group": k}
    return build_tokenizer({"encoder": enc, "quantizer": {"name": "identity"}, "decoder": dec})


def causal3d_model():
    from tokcore.api import build_tokenizer

    conv = {"base_channels": 16, "channel_mult": [1, 2, 2], "num_res_blocks": 1, "mid_attention": False,
            "temporal_compression": 4}
    return build_tokenizer({"encoder": {"name": "causal3d", "in_channels": 3, "out_dim": 8, **conv},
                            "quantizer": {"name": "identity"},
                            "decoder": {"name": "causal3d", "out_channels": 3, **conv}})


def measure(model: str, frames: int, size: int, batch: int, steps: int, k: int) -> dict[str, float]:
    """One configuration, in this process: median step seconds and peak memory above setup."""
    from tokcore import registry

    torch.manual_seed(0)
    loss = registry.build("loss", {"name": "reconstruction", "kind": "l2"})
    if model == "causal3d":
        tok = causal3d_model()
        x = torch.randn(batch, 3, frames + 1, size, size)
        params = list(tok.parameters())

        def step() -> dict[str, float]:
            out = tok(x)
            loss(out.recon, x).loss.backward()
            return {}
    else:
        tok = coordtok_model(frames, size, k)
        trainer = registry.build("trainer", {"name": "coordtok", "patches_per_clip": k})
        trainer.loss = loss
        x = torch.randn(batch, 3, frames, size, size)
        if model == "coordtok":
            params = list(tok.parameters())

            def step() -> dict[str, float]:
                t0 = time.perf_counter()
                trainer.training_step(tok, {"input": x, "mask": None}, 0).loss.backward()
                return {"total": time.perf_counter() - t0}
        else:  # "coordtok-decoder": the decoder alone on latents of the clip's size
            params = list(tok.decoder.parameters())
            z = torch.randn(batch, tok.encoder.triplane.tokens, 4, requires_grad=True)
            from tok_coordtok.patches import gather_patches, random_patches

            def step() -> dict[str, float]:
                index = random_patches(batch, tok.decoder.grid, k)
                pred = tok.decoder(z, patches=index)
                loss(pred, gather_patches(x, index, 1, 4)).loss.backward()
                return {}

    opt = torch.optim.AdamW(params, lr=1e-4)
    base = rss_kib()
    times = []
    for i in range(steps + 1):  # the first step is a warm-up, not timed
        opt.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        step()
        opt.step()
        if i:
            times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"step_s": statistics.median(times), "peak_mib": max(peak - base, 0) / 1024,
            "params": sum(p.numel() for p in params)}


def decoder_split(frames: int, size: int, batch: int, steps: int, k: int) -> float:
    """Median seconds of CoordTok's decoder forward + backward inside a full step."""
    from tok_coordtok.patches import gather_patches, random_patches

    from tokcore import registry

    torch.manual_seed(0)
    tok = coordtok_model(frames, size, k)
    loss = registry.build("loss", {"name": "reconstruction", "kind": "l2"})
    x = torch.randn(batch, 3, frames, size, size)
    times = []
    for i in range(steps + 1):
        z = tok.encoder(x)
        latents = z.detach().requires_grad_(True)
        t0 = time.perf_counter()
        index = random_patches(batch, tok.decoder.grid, k)
        pred = tok.decoder(latents, patches=index)
        loss(pred, gather_patches(x, index, 1, 4)).loss.backward()
        if i:
            times.append(time.perf_counter() - t0)
        z.backward(latents.grad)
    return statistics.median(times)


def child(args: argparse.Namespace) -> None:
    out = measure(args.model, args.one, args.size, args.batch, args.steps, args.k)
    if args.model == "coordtok":
        out["decoder_s"] = decoder_split(args.one, args.size, args.batch, args.steps, args.k)
    print(json.dumps(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[16, 32, 64, 128])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--k", type=int, default=256, help="patches decoded per clip (CoordTok's K)")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a child process: one configuration
    parser.add_argument("--model", default="coordtok", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        return child(args)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); clips {args.size}x{args.size}, "
          f"batch {args.batch}, {args.steps} timed steps after one warm-up; CoordTok K = {args.k} patches of 1x4x4")
    results: dict[str, dict[int, dict[str, float]]] = {}
    for model in ("coordtok", "coordtok-decoder", "causal3d"):
        for t in args.frames:
            cmd = [sys.executable, __file__, "--one", str(t), "--model", model, "--steps", str(args.steps),
                   "--batch", str(args.batch), "--size", str(args.size), "--k", str(args.k)]
            done = subprocess.run(cmd, capture_output=True, text=True, check=True)
            results.setdefault(model, {})[t] = json.loads(done.stdout.strip().splitlines()[-1])
            r = results[model][t]
            extra = f", decoder side {r['decoder_s'] * 1000:7.1f} ms" if "decoder_s" in r else ""
            print(f"  {model:17s} T={t:4d}: step {r['step_s'] * 1000:8.1f} ms{extra}, peak +{r['peak_mib']:7.1f} MiB, "
                  f"{int(r['params']):,} params", flush=True)

    first, last = args.frames[0], args.frames[-1]
    rows = [("CoordTok full step time", "coordtok", "step_s"), ("CoordTok decoder side time", "coordtok", "decoder_s"),
            ("CoordTok full step peak memory", "coordtok", "peak_mib"),
            ("CoordTok decoder-only step time", "coordtok-decoder", "step_s"),
            ("CoordTok decoder-only peak memory", "coordtok-decoder", "peak_mib"),
            ("causal3d step time", "causal3d", "step_s"), ("causal3d peak memory", "causal3d", "peak_mib")]
    print(f"\ngrowth from T={first} to T={last} (x{last / first:g} frames):")
    for label, model, key in rows:
        a, b = results[model][first][key], results[model][last][key]
        print(f"  {label:36s} {a:10.3f} -> {b:10.3f}  x{b / a:6.2f}")


if __name__ == "__main__":
    main()
