"""Small pieces every quantizer uses: fp32 math under autocast, flattening, straight-through
gradients and optional in/out projections."""

from __future__ import annotations

import contextlib

import torch
from torch import Tensor, nn

from tokcore.errors import ConfigError


def full_precision(device: torch.device) -> contextlib.AbstractContextManager:
    """Disable autocast: rounding and nearest-code search in bf16 pick wrong codes."""
    return torch.autocast(device_type=device.type, enabled=False)


def straight_through(code: Tensor, latent: Tensor) -> Tensor:
    """`code` in value (bit for bit: x - x is exactly 0), the identity in gradient w.r.t. `latent`.

    Unlike `latent + (code - latent).detach()`, the value is exactly `code`, so decoding the
    indices reproduces what the forward pass returned even when gradients are enabled.
    """
    if not (torch.is_grad_enabled() and latent.requires_grad):
        return code  # nothing to differentiate: skip two passes over the tensor
    return code + (latent - latent.detach())


def projections(dim: int, inner_dim: int) -> tuple[nn.Module, nn.Module]:
    """Linear maps into and out of the quantizer's own space, or identities when not needed."""
    if dim == inner_dim:
        return nn.Identity(), nn.Identity()
    return nn.Linear(dim, inner_dim), nn.Linear(inner_dim, dim)


def check_positive(**values: int) -> None:
    """Raise a ConfigError naming the first parameter that is not a positive integer."""
    for key, value in values.items():
        if value < 1:
            raise ConfigError(f"must be a positive integer, got {value}", key=key)
