"""Two gloo processes with different data keep VQ codebook state bit-identical."""

import os
import socket
import subprocess
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from tokcore.builtins.quantizers import RVQ, VQ


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_and_compare(rank: int, world: int, port: int) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        torch.set_num_threads(1)
        torch.manual_seed(0)  # same initial codebooks, as DDP would broadcast them
        quantizers = [
            VQ(dim=8, codebook_size=32, kmeans_init=True, dead_after_steps=2, dead_usage_threshold=0.5),
            VQ(dim=8, codebook_size=32, heads=2, cosine=True, dead_after_steps=2),
            RVQ(dim=8, codebook_size=16, stages=2, dead_after_steps=2),
        ]
        torch.manual_seed(100 + rank)  # every rank its own data
        restarts = 0
        for step in range(6):
            # data drifts, so codes die and are restarted along the way
            z = torch.randn(64 + 16 * rank, 8) + 3.0 * step
            for q in quantizers:
                restarts += int(q(z).stats["dead_codes"])
        assert restarts > 0
        for q in quantizers:
            for name, tensor in q.state_dict().items():
                gathered = [torch.empty_like(tensor) for _ in range(world)]
                dist.all_gather(gathered, tensor)
                assert all(torch.equal(gathered[0], g) for g in gathered), f"{name} differs across ranks"
        dist.barrier()
    finally:
        dist.destroy_process_group()


def test_codebooks_stay_bit_identical_across_two_gloo_ranks():
    # Run as a script: spawned ranks re-import __main__ by path, whatever pytest's import mode.
    proc = subprocess.run([sys.executable, __file__], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "ranks identical"


if __name__ == "__main__":
    mp.spawn(train_and_compare, args=(2, free_port()), nprocs=2, join=True)
    print("ranks identical")
