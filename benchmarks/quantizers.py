"""tokcore's quantizers against vector-quantize-pytorch, on the same inputs, in one run.

    python benchmarks/quantizers.py            # full sizes (issue #3)
    python benchmarks/quantizers.py --quick    # fewer repeats

Cases: VQ (dim 256, 8192 codes, 8192 vectors; eval forward, and train forward+backward),
FSQ [8, 5, 5, 5] eval, LFQ 2^14 (eval, and train with its entropy loss). Each time is the
median of several repeats after warm-up, on 2 threads. Also printed: tokcore VQ's effective
GFLOP/s (2*N*K*D per forward) as a fraction of a plain fp32 matmul of the same shape, and
the peak memory growth of one LFQ training step, measured in a fresh subprocess per library
(peak RSS, so the peer and tokcore do not see each other's allocations).

The peer is optional (`pip install tokcore[bench]`); without it only tokcore's numbers print.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from typing import Callable

import torch

from tokcore.builtins.quantizers import FSQ, LFQ, VQ

try:
    import vector_quantize_pytorch as peer
except ImportError:  # benchmark-only extra
    peer = None

N_VQ, DIM_VQ, K_VQ = 8192, 256, 8192
N_FSQ, LEVELS = 65536, [8, 5, 5, 5]
N_LFQ_EVAL, N_LFQ_TRAIN, BITS = 65536, 4096, 14


def median_seconds(fns: list[Callable[[], object] | None], repeats: int, warmup: int = 1) -> list[float | None]:
    """Median time of each function; runs are interleaved so that background load on a
    shared machine hits all of them alike."""
    live = [fn for fn in fns if fn is not None]
    for _ in range(warmup):
        for fn in live:
            fn()
    times: dict[int, list[float]] = {id(fn): [] for fn in live}
    for _ in range(repeats):
        for fn in live:
            start = time.perf_counter()
            fn()
            times[id(fn)].append(time.perf_counter() - start)
    return [statistics.median(times[id(fn)]) if fn is not None else None for fn in fns]


def eval_step(quantizer: torch.nn.Module, x: torch.Tensor) -> Callable[[], object]:
    def run():
        quantizer.eval()  # set per call: the same module may also serve a train case
        with torch.inference_mode():
            return quantizer(x)
    return run


def train_step(quantizer: torch.nn.Module, x: torch.Tensor, tokcore: bool) -> Callable[[], object]:
    """Forward + backward of `mean(quantized^2) + auxiliary losses`."""
    def run():
        quantizer.train()
        z = x.detach().requires_grad_(True)
        if tokcore:
            out = quantizer(z)
            loss = out.quantized.square().mean() + sum(out.losses.values())
        else:
            quantized, _, aux = quantizer(z)
            loss = quantized.square().mean() + aux.sum()
        loss.backward()
    return run


# -- the cases: (name, tokcore callable, peer callable or None) -------------------------------
def vq_cases():
    torch.manual_seed(0)
    x = torch.randn(N_VQ, DIM_VQ)
    ours = VQ(dim=DIM_VQ, codebook_size=K_VQ, decay=0.99, commitment_weight=0.25, kmeans_init=False)
    theirs = None
    if peer is not None:
        theirs = peer.VectorQuantize(dim=DIM_VQ, codebook_size=K_VQ, decay=0.99, commitment_weight=0.25)
        theirs._codebook.embed.data.copy_(ours.embed.unsqueeze(0))  # same codes, same search
        theirs._codebook.initted.data.fill_(True)
    x3 = x.unsqueeze(0)  # the peer wants (batch, sequence, dim)
    return [
        ("VQ eval", eval_step(ours, x), theirs and eval_step(theirs, x3)),
        ("VQ train", train_step(ours, x, True), theirs and train_step(theirs, x3, False)),
    ]


def fsq_cases():
    torch.manual_seed(0)
    x = torch.randn(1, N_FSQ, len(LEVELS))
    theirs = peer.FSQ(levels=LEVELS) if peer is not None else None
    return [("FSQ [8,5,5,5] eval", eval_step(FSQ(LEVELS), x), theirs and eval_step(theirs, x))]


def lfq_pair():
    ours = LFQ(2 ** BITS, entropy_weight=0.1, commitment_weight=0.0)
    theirs = None
    if peer is not None:
        theirs = peer.LFQ(dim=BITS, codebook_size=2 ** BITS, entropy_loss_weight=0.1, commitment_loss_weight=0.0)
    return ours, theirs


def lfq_cases():
    torch.manual_seed(0)
    ours, theirs = lfq_pair()
    x_eval, x_train = torch.randn(1, N_LFQ_EVAL, BITS), torch.randn(1, N_LFQ_TRAIN, BITS)
    return [
        ("LFQ 2^14 eval", eval_step(ours, x_eval), theirs and eval_step(theirs, x_eval)),
        ("LFQ 2^14 train (entropy)", train_step(ours, x_train, True), theirs and train_step(theirs, x_train, False)),
    ]


# -- memory: one LFQ training step in a fresh process ------------------------------------------
def memory_mb(field: str) -> float:
    """VmRSS (now) or VmHWM (peak) of this process; VmHWM, unlike ru_maxrss, starts afresh
    at exec, so the parent's peak does not leak into the measurement."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def measure_lfq_memory(which: str, bits: int) -> None:
    """Print the peak RSS growth (MB) of one LFQ training step; run in a subprocess."""
    torch.set_num_threads(2)
    x = torch.randn(1, N_LFQ_TRAIN, bits)
    if which == "tokcore":
        step = train_step(LFQ(2 ** bits, commitment_weight=0.0), x, True)
    else:
        step = train_step(peer.LFQ(dim=bits, codebook_size=2 ** bits, commitment_loss_weight=0.0), x, False)
    before = memory_mb("VmRSS")
    step()
    print(f"{max(0.0, memory_mb('VmHWM') - before):.1f}")


def lfq_memory_mb(which: str, bits: int) -> str:
    cmd = [sys.executable, __file__, "--lfq-memory", which, "--bits", str(bits)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    return done.stdout.strip().splitlines()[-1] + " MB" if done.returncode == 0 else "failed"


# -- main ---------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--lfq-memory", choices=["tokcore", "peer"], help=argparse.SUPPRESS)
    parser.add_argument("--bits", type=int, default=BITS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.lfq_memory:
        return measure_lfq_memory(args.lfq_memory, args.bits)

    torch.set_num_threads(2)
    repeats = 3 if args.quick else 7
    peer_name = f"vector-quantize-pytorch {peer.__version__}" if peer and hasattr(peer, "__version__") else (
        "vector-quantize-pytorch" if peer else None)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, median of {repeats} repeats")
    if peer is None:
        print("vector-quantize-pytorch is not installed (pip install tokcore[bench]): tokcore numbers only")
    else:
        print(f"peer: {peer_name}")
    print()
    print(f"{'case':<28}{'tokcore ms':>12}{'peer ms':>12}{'speedup':>10}")
    results = {}
    x, codes = torch.randn(N_VQ, DIM_VQ), torch.randn(K_VQ, DIM_VQ)
    matmul = lambda: torch.mm(x, codes.t())  # noqa: E731
    for name, ours, theirs in vq_cases() + fsq_cases() + lfq_cases():
        extra = matmul if name == "VQ eval" else None  # the reference rate, timed alongside
        t_ours, t_peer, t_mm = median_seconds([ours, theirs, extra], repeats)
        results[name] = (t_ours, t_peer, t_mm)
        peer_col = f"{t_peer * 1e3:12.1f}{t_peer / t_ours:9.1f}x" if t_peer else f"{'-':>12}{'-':>10}"
        print(f"{name:<28}{t_ours * 1e3:12.1f}{peer_col}")

    flops = 2 * N_VQ * K_VQ * DIM_VQ
    t_vq, t_vq_peer, t_mm = results["VQ eval"]
    print()
    print(f"fp32 matmul {N_VQ}x{DIM_VQ} @ {DIM_VQ}x{K_VQ}: {t_mm * 1e3:.1f} ms = {flops / t_mm / 1e9:.1f} GFLOP/s")
    print(f"tokcore VQ eval: {flops / t_vq / 1e9:.1f} GFLOP/s = {t_mm / t_vq:.2f} of the matmul rate")
    if t_vq_peer:
        print(f"peer VQ eval:    {flops / t_vq_peer / 1e9:.1f} GFLOP/s = {t_mm / t_vq_peer:.2f} of the matmul rate")

    print()
    print(f"peak memory growth of one LFQ train step ({N_LFQ_TRAIN} vectors, entropy loss):")
    for bits in (BITS, 16) if peer else (BITS,):
        row = f"  2^{bits} codes: tokcore {lfq_memory_mb('tokcore', bits)}"
        if peer:
            row += f", peer {lfq_memory_mb('peer', bits)}"
        print(row)
    print(f"  2^20 codes: tokcore {lfq_memory_mb('tokcore', 20)}")


if __name__ == "__main__":
    main()
