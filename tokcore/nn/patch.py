"""Images to patch tokens and back (the linear "patch embedding" is a Linear applied after)."""

from __future__ import annotations

from torch import Tensor


def patchify(x: Tensor, patch_size: int) -> Tensor:
    """`(B, C, H, W)` -> channels-last `(B, H/p, W/p, p*p*C)`; H and W must be multiples of p."""
    b, c, h, w = x.shape
    p = patch_size
    x = x.reshape(b, c, h // p, p, w // p, p)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(b, h // p, w // p, p * p * c)


def unpatchify(tokens: Tensor, patch_size: int, channels: int) -> Tensor:
    """The inverse of `patchify`: `(B, h, w, p*p*C)` -> `(B, C, h*p, w*p)`."""
    b, h, w, _ = tokens.shape
    p = patch_size
    x = tokens.reshape(b, h, w, p, p, channels)
    return x.permute(0, 5, 1, 3, 2, 4).reshape(b, channels, h * p, w * p)
