"""The pre-norm transformer block shared by the ViT, 1D transformer and TiTok backbones.

Options beyond the plain block (all off by default, which keeps the original weights' names):
grouped-query attention (`num_kv_heads`), QK-norm (a LayerNorm on each head's queries and
keys, which keeps attention logits bounded in long trainings), a GEGLU MLP, and rotary
positions (`rope`: angles from `tokcore.nn.rope.MRoPE`, applied to queries and keys).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class Attention(nn.Module):
    """Multi-head self-attention over `(B, L, D)` through `scaled_dot_product_attention`.

    `mask`, if given, is `(B, L)` boolean: True for tokens that may be attended to.
    `pairs`, if given, is `(L, L)` or `(B, L, L)` boolean: True where query i may attend to
    key j (causal, block-causal and block-diagonal attention over a packed batch).
    `rope`, if given, is rotary angles `(L, head_dim/2)` or `(B, L, head_dim/2)`.
    `cu_seqlens`, if given, marks a packed batch `(1, sum L, D)` (`tokcore.nn.varlen`): each
    sample attends within its own block.

    Args:
        num_kv_heads: key/value heads (grouped-query attention); default num_heads.
        qk_norm: LayerNorm each head's queries and keys before the dot product.
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True, num_kv_heads: int | None = None,
                 qk_norm: bool = False):
        super().__init__()
        num_kv_heads = num_kv_heads or num_heads
        if dim % num_heads:
            raise ValueError(f"attention width {dim} is not divisible by num_heads={num_heads}")
        if num_heads % num_kv_heads:
            raise ValueError(f"num_heads={num_heads} is not a multiple of num_kv_heads={num_kv_heads}")
        self.num_heads, self.num_kv_heads, self.head_dim = num_heads, num_kv_heads, dim // num_heads
        self.qkv = nn.Linear(dim, (num_heads + 2 * num_kv_heads) * self.head_dim, bias=qkv_bias)
        self.q_norm = nn.LayerNorm(self.head_dim) if qk_norm else nn.Identity()
        self.k_norm = nn.LayerNorm(self.head_dim) if qk_norm else nn.Identity()
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, mask: Tensor | None = None, pairs: Tensor | None = None,
                rope: Tensor | None = None, cu_seqlens: Tensor | None = None) -> Tensor:
        b, n, d = x.shape
        h, hkv = self.num_heads, self.num_kv_heads
        q, k, v = self.qkv(x).view(b, n, h + 2 * hkv, self.head_dim).transpose(1, 2).split([h, hkv, hkv], dim=1)
        q, k = self.q_norm(q), self.k_norm(k)
        if rope is not None:
            from tokcore.nn.rope import apply_rope

            q, k = apply_rope(q, rope), apply_rope(k, rope)
        if cu_seqlens is not None:
            if mask is not None or pairs is not None:
                raise ValueError("a packed batch (cu_seqlens) takes no mask or pairs: its blocks are its mask")
            from tokcore.nn.varlen import varlen_attention

            return self.proj(varlen_attention(q, k, v, cu_seqlens).transpose(1, 2).reshape(b, n, d))
        attn_mask = None if mask is None else mask[:, None, None, :]  # broadcast over heads, queries
        if pairs is not None:
            pairs = pairs[:, None] if pairs.dim() == 3 else pairs  # broadcast over heads
            attn_mask = pairs if attn_mask is None else attn_mask & pairs
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, enable_gqa=hkv != h)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class MLP(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class GEGLU(nn.Module):
    """A gated MLP (Shazeer, 2020): fc2(gelu(a) * b) with [a, b] = fc1(x). `hidden` is the
    width of a and b; 2/3 of a plain MLP's keeps the parameter count."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, 2 * hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        a, b = self.fc1(x).chunk(2, dim=-1)
        return self.fc2(F.gelu(a) * b)


class TransformerBlock(nn.Module):
    """x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, num_kv_heads: int | None = None,
                 qk_norm: bool = False, mlp: str = "gelu"):
        super().__init__()
        if mlp not in ("gelu", "geglu"):
            raise ValueError(f"mlp must be 'gelu' or 'geglu', got {mlp!r}")
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads, num_kv_heads=num_kv_heads, qk_norm=qk_norm)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MLP(dim, int(dim * mlp_ratio)) if mlp == "gelu" else GEGLU(dim, int(dim * mlp_ratio * 2 / 3))

    def forward(self, x: Tensor, mask: Tensor | None = None, pairs: Tensor | None = None,
                rope: Tensor | None = None, cu_seqlens: Tensor | None = None) -> Tensor:
        x = x + self.attn(self.norm1(x), mask, pairs, rope, cu_seqlens)
        return x + self.mlp(self.norm2(x))


class Transformer(nn.Module):
    """`depth` blocks and a final LayerNorm, on `(B, L, D)`."""

    def __init__(self, dim: int, depth: int, num_heads: int, mlp_ratio: float = 4.0,
                 num_kv_heads: int | None = None, qk_norm: bool = False, mlp: str = "gelu"):
        super().__init__()
        self.blocks = nn.ModuleList(TransformerBlock(dim, num_heads, mlp_ratio, num_kv_heads, qk_norm, mlp)
                                    for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.apply(init_weights)

    def forward(self, x: Tensor, mask: Tensor | None = None, pairs: Tensor | None = None,
                rope: Tensor | None = None, cu_seqlens: Tensor | None = None) -> Tensor:
        for block in self.blocks:
            x = block(x, mask, pairs, rope, cu_seqlens)
        return self.norm(x)


def init_weights(module: nn.Module) -> None:
    """ViT-style initialization: truncated normal (std 0.02) linear weights, zero biases."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
