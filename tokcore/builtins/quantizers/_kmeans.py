"""k-means for codebook initialization, identical on every rank under torch.distributed.

Initial centres are drawn from vectors gathered from all ranks with a fixed-seed generator
(so every rank draws the same rows); each Lloyd step all-reduces cluster sums and counts.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from tokcore.builtins.quantizers._dist import all_gather_cat, all_reduce_sum_
from tokcore.builtins.quantizers._search import nearest_codes


def sample_rows(vectors: Tensor, count: int) -> Tensor:
    """`count` random rows of `vectors` (with replacement only when there are too few)."""
    n = vectors.shape[0]
    if n >= count:
        picks = torch.randperm(n, device=vectors.device)[:count]
    else:
        picks = torch.randint(n, (count,), device=vectors.device)
    return vectors[picks]


@torch.no_grad()
def kmeans(vectors: Tensor, num_clusters: int, iters: int, *, cosine: bool = False) -> tuple[Tensor, Tensor]:
    """Cluster `vectors` `(N, D)`; returns centres `(K, D)` and cluster sizes `(K,)`.

    Under torch.distributed, `vectors` is this rank's share and the result is global.
    """
    pool = all_gather_cat(sample_rows(vectors, num_clusters))
    same_on_every_rank = torch.Generator(device="cpu").manual_seed(0)
    picks = torch.randperm(pool.shape[0], generator=same_on_every_rank)[:num_clusters]
    centres = pool[picks.to(pool.device)].clone()
    counts = torch.zeros(num_clusters, dtype=vectors.dtype, device=vectors.device)
    for _ in range(max(1, iters)):
        assign = nearest_codes(vectors, centres, cosine=cosine)
        counts = all_reduce_sum_(torch.bincount(assign, minlength=num_clusters).to(vectors.dtype))
        sums = all_reduce_sum_(torch.zeros_like(centres).index_add_(0, assign, vectors))
        updated = sums / counts.clamp_min(1.0).unsqueeze(1)
        if cosine:
            updated = F.normalize(updated, dim=1)
        centres = torch.where(counts.unsqueeze(1) > 0, updated, centres)  # empty clusters keep their centre
    return centres, counts
