"""The block of CoordTok's triplane encoder: learnable plane queries read the clip's patch
features by cross-attention, then attend to each other (the reference code's
`ConditionMaskBlock`: pre-norm cross-attention, self-attention and MLP, no attention biases)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from tokcore.nn.transformer import MLP


class CrossAttention(nn.Module):
    """Multi-head attention of queries `(B, L, D)` over a memory `(B, M, D)`; `mask` `(B, M)`
    boolean, True for memory tokens that may be attended to."""

    def __init__(self, dim: int, num_heads: int, bias: bool = False):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"attention width {dim} is not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim, bias=bias)
        self.kv = nn.Linear(dim, 2 * dim, bias=bias)
        self.proj = nn.Linear(dim, dim, bias=bias)

    def forward(self, x: Tensor, memory: Tensor, mask: Tensor | None = None) -> Tensor:
        b, n, d = x.shape
        h = self.num_heads
        q = self.q(x).view(b, n, h, d // h).transpose(1, 2)
        k, v = self.kv(memory).view(b, memory.shape[1], 2, h, d // h).permute(2, 0, 3, 1, 4)
        attn_mask = None if mask is None else mask[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class QueryBlock(nn.Module):
    """x + cross(norm(x), memory); x + self(norm(x)); x + mlp(norm(x))."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.cross = CrossAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.self_attn = CrossAttention(dim, num_heads)  # attention of the queries over themselves
        self.norm3 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = MLP(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor, memory: Tensor, mask: Tensor | None = None) -> Tensor:
        x = x + self.cross(self.norm1(x), memory, mask)
        y = self.norm2(x)
        x = x + self.self_attn(y, y)
        return x + self.mlp(self.norm3(x))
