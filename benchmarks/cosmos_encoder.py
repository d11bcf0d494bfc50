"""tokcore's Cosmos encoder against NVIDIA's reference, scripted to TorchScript as Cosmos releases
it, on the same clip and the same weights, on CPU, in one run; and the peak memory of coding a
long clip whole against coding it in temporal windows.

    pip install einops loguru        # the reference's light dependencies
    python benchmarks/cosmos_encoder.py /path/to/Cosmos-Tokenizer [--size 64] [--frames 17] [--repeats 5]

The reference is NVIDIA's `CausalDiscreteVideoTokenizer` at the DV4x8x8 architecture (channels 128,
multipliers [2, 4, 4], 2 residual blocks, patch 4) with random weights, its `encoder_jit()` traced
(`torch.jit.trace`, as the released encoder.jit is) in memory; tokcore's `cosmos`
encoder and `cosmos_fsq` take the same weights. Both run in float32 with the same threads
(OMP_NUM_THREADS, default 2). Prints seconds per clip, the ratio (reference / tokcore, > 1 means
tokcore is faster), that the indices agree, and the peak resident memory of a child process that
encodes a --long-frames clip whole, in windows of 17 frames, and a 17-frame clip.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

import torch

ARCH = dict(channels=128, channels_mult=[2, 4, 4], num_res_blocks=2, attn_resolutions=[32], resolution=1024,
            z_channels=16, spatial_compression=8, temporal_compression=4, patch_size=4)


def ours(state: dict, window: int | None):
    from tok_rgb.cosmos.fsq import CosmosFSQ
    from tok_rgb.cosmos.networks import CosmosEncoder

    enc = CosmosEncoder(**ARCH, embedding_dim=6, window=window).eval()
    enc.load_state_dict({**{k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")},
                         **{k: v for k, v in state.items() if k.startswith("quant_conv.")}})
    return enc, CosmosFSQ()


def seconds(fns: list, repeats: int) -> list[float]:
    """Median seconds of each function, run in turns so that both see the same machine load."""
    for fn in fns:
        fn()  # warm up (TorchScript profiles and optimizes on its first runs)
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, out in zip(fns, times):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
    return [statistics.median(t) for t in times]


def rss_mib() -> float:
    """The resident memory of this process now (not its peak), MiB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def encode_memory(frames: int, size: int, window: int | None) -> tuple[float, float]:
    """(resident MiB before encoding, highest resident MiB while encoding), sampled every 5 ms,
    of one random clip; freed memory is returned to the system first, so the difference is what
    encoding holds at its peak. Run in a fresh process (`peak_memory_child`)."""
    import ctypes
    import gc
    import threading

    torch.manual_seed(0)
    enc, q = ours(fresh_state(), window)
    x = torch.rand(1, 3, frames, size, size) * 2 - 1
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    before = peak = rss_mib()
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.005):
            peak = max(peak, rss_mib())

    sampler = threading.Thread(target=sample)
    sampler.start()
    with torch.no_grad():
        q(enc(x))
    done.set()
    sampler.join()
    return before, max(peak, rss_mib())


def peak_memory_child(frames: int, size: int, window: int | None) -> tuple[float, float]:
    code = (f"import sys; sys.path.insert(0, {os.path.dirname(__file__)!r}); from cosmos_encoder import encode_memory; "
            f"print(*encode_memory({frames}, {size}, {window!r}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    before, after = (float(v) for v in out.stdout.strip().splitlines()[-1].split())
    return before, after


def fresh_state() -> dict:
    """Random weights of tokcore's own encoder in the reference's names (for the memory runs)."""
    from tok_rgb.cosmos.networks import CosmosEncoder

    enc = CosmosEncoder(**ARCH, embedding_dim=6, window=None)
    state = {}
    for k, v in enc.state_dict().items():
        state[("" if k.startswith("quant_conv.") else "encoder.") + k] = v
    return state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference", help="a checkout of github.com/NVIDIA/Cosmos-Tokenizer")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--frames", type=int, default=17)
    parser.add_argument("--long-frames", type=int, default=65)
    parser.add_argument("--memory-size", type=int, default=128, help="frame size of the memory runs")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    sys.path.insert(0, args.reference)
    from cosmos_tokenizer.networks.configs import discrete_video
    from cosmos_tokenizer.networks.discrete_video import CausalDiscreteVideoTokenizer

    torch.manual_seed(0)
    model = CausalDiscreteVideoTokenizer(**{**discrete_video, **ARCH}).to(dtype=torch.float32).eval()
    x = torch.rand(1, 3, args.frames, args.size, args.size) * 2 - 1
    with torch.no_grad():
        reference = torch.jit.trace(model.encoder_jit().eval(), x)  # what torch.jit.load of encoder.jit gives
        enc, fsq = ours(model.state_dict(), window=None)
        ref_idx = reference(x)[0]
        our_idx = fsq(enc(x)).indices
        t_ref, t_ours = seconds([lambda: reference(x), lambda: fsq(enc(x))], args.repeats)
    agree = (ref_idx.long() == our_idx).float().mean().item()
    print(f"clip (1, 3, {args.frames}, {args.size}, {args.size}), {torch.get_num_threads()} threads, float32")
    print(f"reference encoder.jit (traced):       {t_ref:.3f} s")
    print(f"tokcore cosmos encoder + cosmos_fsq:    {t_ours:.3f} s")
    print(f"ratio reference / tokcore: {t_ref / t_ours:.2f}x; indices agree on {agree:.4%} of positions")
    for frames, window in ((args.long_frames, None), (args.long_frames, 17), (17, None), (17, 17)):
        before, after = peak_memory_child(frames, args.memory_size, window)
        how = "whole" if window is None else f"in windows of {window}"
        print(f"{frames} frames of {args.memory_size}x{args.memory_size} {how}: {after - before:.0f} MiB held at the "
              f"peak of encoding (resident {before:.0f} -> {after:.0f} MiB)")


if __name__ == "__main__":
    main()
