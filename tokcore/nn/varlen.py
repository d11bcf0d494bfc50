"""Packed batches: variable-length sequences concatenated into one, attending within each.

Padding samples of different lengths to the longest wastes the compute of every padded
position; packing concatenates them into one sequence `(1, sum L, D)` whose attention is
restricted to each sample's own block, described by `cu_seqlens` (the cumulative lengths, as
flash-attn calls them). Linear layers and MLPs then cost sum L, attention sum L_i^2.

    pack / unpack        a list of `(L_i, D)` sequences <-> one packed `(1, sum L, D)`
    block_diagonal_mask  the `(sum L, sum L)` mask of a packed batch (the dense reference)
    varlen_attention     attention within each block: flash-attn's varlen kernel on a GPU
                         when installed, else one SDPA call per sample (no mask at all)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def pack(sequences: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
    """`(L_i, ...)` sequences -> `(1, sum L, ...)` and `cu_seqlens` `(n + 1,)` int32."""
    lengths = torch.tensor([len(s) for s in sequences])
    cu = torch.zeros(len(sequences) + 1, dtype=torch.int32)
    cu[1:] = lengths.cumsum(0)
    return torch.cat(list(sequences))[None], cu.to(sequences[0].device)


def unpack(packed: Tensor, cu_seqlens: Tensor) -> list[Tensor]:
    """The inverse of `pack`: `(1, sum L, ...)` -> the `(L_i, ...)` sequences."""
    return list(packed[0].split(torch.diff(cu_seqlens).tolist()))


def block_diagonal_mask(cu_seqlens: Tensor) -> Tensor:
    """`(sum L, sum L)` bool: True where query and key belong to the same sample."""
    segment = torch.repeat_interleave(torch.arange(len(cu_seqlens) - 1, device=cu_seqlens.device),
                                      torch.diff(cu_seqlens).long())
    return segment[:, None] == segment[None, :]


def varlen_attention(q: Tensor, k: Tensor, v: Tensor, cu_seqlens: Tensor) -> Tensor:
    """Attention of a packed batch within each sample's block: q `(1, H, sum L, d)`, k and v
    `(1, Hkv, sum L, d)`. flash-attn's varlen kernel on CUDA when it is installed (half
    precision); otherwise SDPA once per sample, which costs sum L_i^2, not (sum L)^2."""
    if q.is_cuda and q.dtype in (torch.float16, torch.bfloat16):
        try:
            from flash_attn import flash_attn_varlen_func
        except ImportError:
            pass
        else:
            longest = int(torch.diff(cu_seqlens).max())
            out = flash_attn_varlen_func(q[0].transpose(0, 1), k[0].transpose(0, 1), v[0].transpose(0, 1),
                                         cu_seqlens, cu_seqlens, longest, longest)
            return out.transpose(0, 1)[None]
    bounds = cu_seqlens.tolist()
    gqa = k.shape[1] != q.shape[1]
    parts = [F.scaled_dot_product_attention(q[..., a:b, :], k[..., a:b, :], v[..., a:b, :], enable_gqa=gqa)
             for a, b in zip(bounds[:-1], bounds[1:])]
    return torch.cat(parts, dim=2)
