"""Packed against padded batches of mixed lengths through a transformer, in one run.

The lengths are TiTok-Video's: a clip of T x H x W (multiples of the patch, drawn per sample
with an aspect ratio of at most 2) makes T/4 * H/8 * W/8 patches, plus k latent tokens drawn
from [k_min, k_max]. Padded: the batch padded to its longest sequence, padding masked (SDPA
with a key mask). Packed: one sequence, attention within each sample (`tokcore.nn.varlen`:
SDPA per sample on CPU, flash-attn varlen on a GPU). Both compute the same outputs for the
real tokens; the figure of merit is real tokens per second. Attention memory: the score
matrices each needs, B * heads * Lmax^2 against heads * sum L_i^2 floats (what SDPA's math
path on CPU materializes; a fused GPU kernel keeps neither, but pays the padded FLOPs).

    python benchmarks/packing.py [--samples 16] [--repeats 5]
"""

from __future__ import annotations

import argparse
import time

import torch

from tokcore.nn.transformer import Transformer
from tokcore.nn.varlen import pack


def lengths(n: int, gen: torch.Generator) -> list[int]:
    out = []
    for _ in range(n):
        t = 4 * int(torch.randint(2, 6, (), generator=gen))           # 8-20 frames
        h = 8 * int(torch.randint(12, 25, (), generator=gen))          # 96-192 px
        w = min(2 * h, 8 * int(torch.randint(12, 33, (), generator=gen)))
        k = int(torch.randint(16, 129, (), generator=gen))
        out.append((t // 4) * (h // 8) * (w // 8) + k)
    return out


def timed(fn, repeats: int) -> float:
    fn()  # warm up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--heads", type=int, default=4)
    args = ap.parse_args()
    torch.manual_seed(0)
    net = Transformer(args.width, 2, args.heads, qk_norm=True).eval()
    lens = lengths(args.samples, torch.Generator().manual_seed(0))
    seqs = [torch.randn(n, args.width) for n in lens]
    longest, real = max(lens), sum(lens)
    padded = torch.zeros(len(seqs), longest, args.width)
    mask = torch.zeros(len(seqs), longest, dtype=torch.bool)
    for i, s in enumerate(seqs):
        padded[i, :len(s)], mask[i, :len(s)] = s, True
    packed, cu = pack(seqs)
    with torch.no_grad():
        out_pad = net(padded, mask=mask)
        out_pack = net(packed, cu_seqlens=cu)[0]
        worst = max(float((out_pad[i, :n] - o).abs().max())
                    for i, (n, o) in enumerate(zip(lens, out_pack.split(lens))))
        t_pad = timed(lambda: net(padded, mask=mask), args.repeats)
        t_pack = timed(lambda: net(packed, cu_seqlens=cu), args.repeats)
    mem_pad = len(seqs) * args.heads * longest**2 * 4
    mem_pack = args.heads * sum(n * n for n in lens) * 4
    print(f"{len(seqs)} samples, lengths {min(lens)}-{longest} (mean {real / len(seqs):.0f}); "
          f"padded holds {len(seqs) * longest} positions for {real} real tokens "
          f"({real / (len(seqs) * longest):.0%}); threads {torch.get_num_threads()}")
    print(f"outputs agree to {worst:.1e}")
    print("| batch | real tokens/s | attention scores (MiB) |")
    print("|---|---:|---:|")
    print(f"| padded | {real / t_pad:,.0f} | {mem_pad / 2**20:,.1f} |")
    print(f"| packed | {real / t_pack:,.0f} | {mem_pack / 2**20:,.1f} |")
    print(f"packed / padded: {t_pad / t_pack:.2f}x tokens/s, {mem_pad / mem_pack:.2f}x less attention memory")


if __name__ == "__main__":
    main()
