"""`dct1d` encoder and decoder: one global token per sequence, in the low-frequency domain.

The encoder projects a `(B, T, C)` sequence onto its lowest `keep` DCT-II frequencies along
T (the same orthonormal basis as `tokcore.nn.lowpass` and `tokcore.metrics.codecs.DCTCodec`),
standardizes each of the `keep * C` coefficients, and maps them to one latent vector with a
learned linear layer plus an optional residual MLP. The decoder mirrors it and ends with the
inverse DCT, so its output is made of the lowest `keep` cosines: smooth by construction.

Why standardize: a residual quantizer's codebooks split the latent space by Euclidean
distance, and the raw coefficients span orders of magnitude (a walk's mean translation vs a
head's 5 Hz wobble); standardized, every coefficient gets its share of the bits, which is what
lets a learned code beat a DCT codec at the same rate. The statistics are measured on the
first training batch (summed over ranks), like a codebook's k-means initialization, and saved
with the weights. In a `Tokenizer` the decoder shares them (`Decoder.tie_to`) and undoes the
standardization, so encoder and decoder start as an exact low-pass autoencoder and training
only has to learn relative changes: a decoder learning coefficient scales that span 1e-3 to
10 from scratch took thousands of optimizer steps.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from tokcore.builtins.quantizers._dist import all_reduce_sum_
from tokcore.errors import ConfigError
from tokcore.interfaces import Decoder, Encoder, require_dim
from tokcore.nn.lowpass import dct_basis
from tokcore.nn.shapes import check_layout

_TINY = {"keep": 4, "hidden": 16}


class _ResidualMLP(nn.Module):
    """x + MLP(x), the MLP's last layer zero-initialized: the identity until trained."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        nn.init.zeros_(self.mlp[2].weight)
        nn.init.zeros_(self.mlp[2].bias)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.mlp(x)


def _linear(n_in: int, n_out: int) -> nn.Linear:
    """A linear map that starts as the identity when square (else orthogonal), zero bias."""
    layer = nn.Linear(n_in, n_out)
    if n_in == n_out:
        nn.init.eye_(layer.weight)
    else:
        nn.init.orthogonal_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


def _mlp(dim: int, hidden: int) -> nn.Module:
    return _ResidualMLP(dim, hidden) if hidden > 0 else nn.Identity()


def _coefficient_weights(channel_weights: list[float] | None, channels: int, keep: int) -> Tensor | None:
    """Per-channel weights -> one per coefficient, in the `(keep, channels)` flattened order."""
    if channel_weights is None:
        return None
    if len(channel_weights) != channels:
        raise ConfigError(f"dct1d encoder: channel_weights has {len(channel_weights)} values for "
                          f"{channels} channels; give one per channel", key="channel_weights")
    weight = torch.tensor([float(w) for w in channel_weights])
    if not bool((weight > 0).all()):
        raise ConfigError(f"dct1d encoder: channel_weights must all be > 0, got {list(channel_weights)}",
                          key="channel_weights")
    return weight.repeat(keep)


def _check_keep(keep: int, what: str) -> None:
    if keep < 1:
        raise ValueError(f"{what}: keep must be >= 1, got {keep}")


class Standardizer(nn.Module):
    """Per-feature mean and standard deviation, measured once on the first training batch,
    then a fixed per-feature weight: `(x - mean) / std * weight`."""

    def __init__(self, features: int, measure: bool = True, weight: Tensor | None = None):
        super().__init__()
        self.register_buffer("mean", torch.zeros(features))
        self.register_buffer("std", torch.ones(features))
        self.register_buffer("weight", torch.ones(features) if weight is None else weight.float().clone())
        self.register_buffer("initialized", torch.tensor(not measure))

    def forward(self, x: Tensor) -> Tensor:
        """`(B, features)` -> standardized; measures the statistics first if still due."""
        if self.training and not torch.is_inference_mode_enabled() and not bool(self.initialized):
            self._measure(x.detach())
        return (x - self.mean) / self.std * self.weight

    def inverse(self, x: Tensor) -> Tensor:
        return x / self.weight * self.std + self.mean

    @torch.no_grad()
    def _measure(self, x: Tensor) -> None:
        x = x.double()  # E[x^2] - E[x]^2 cancels badly in float32 when the mean is large
        count, total, squares = all_reduce_sum_(torch.stack([torch.full_like(x[0], x.shape[0]), x.sum(0),
                                                             x.square().sum(0)]))
        mean = total / count
        self.mean.copy_(mean)
        self.std.copy_((squares / count - mean.square()).clamp_min(0).sqrt().clamp_min(1e-6))
        self.initialized.fill_(True)


class DCTEncoder(Encoder):
    """Lowest DCT frequencies along time, then a learned map: `(B, T, C)` -> `(B, 1, out_dim)`.

    T must be at least `keep`. One token per sequence (`token_grid` is `(1,)`).

    Args:
        in_channels: channels C per frame.
        out_dim: latent channels of the token.
        keep: DCT frequencies kept per channel (the lowest ones).
        hidden: hidden size of a residual MLP after the linear map; 0: none.
        standardize: standardize each coefficient by its mean and standard deviation on the
            first training batch (kept with the weights); False: raw coefficients.
        channel_weights: one factor per input channel, multiplying its standardized
            coefficients (the tied decoder divides them out): a channel weighted 2 takes a
            larger share of the latent's Euclidean distance, hence of the quantizer's bits.
            Default: all 1.
    """

    example_config: ClassVar[dict] = {**_TINY, "in_channels": 3, "out_dim": 8}

    def __init__(self, in_channels: int = 2, out_dim: int = 32, keep: int = 12, hidden: int = 0,
                 standardize: bool = True, channel_weights: list[float] | None = None):
        super().__init__()
        _check_keep(keep, "dct1d encoder")
        self.in_channels, self.out_dim, self.keep = in_channels, out_dim, keep
        coefficients = keep * in_channels
        weight = _coefficient_weights(channel_weights, in_channels, keep)
        self.standardize = Standardizer(coefficients, measure=standardize, weight=weight)
        self.proj = _linear(coefficients, out_dim)
        self.mlp = _mlp(out_dim, hidden)

    def token_grid(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        if input_shape[0] < self.keep:
            raise ValueError(f"dct1d encoder: T={input_shape[0]} frames cannot give keep={self.keep} "
                             f"DCT frequencies; lower keep or use longer sequences")
        return (1,)

    def coefficients(self, x: Tensor) -> Tensor:
        """`(B, T, C)` -> the lowest `keep` DCT coefficients of each channel, `(B, keep * C)`."""
        basis = dct_basis(x.shape[1], self.keep).to(device=x.device, dtype=x.dtype)
        return torch.einsum("kt,btc->bkc", basis, x).flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        check_layout(x, "dct1d encoder", "BTC", self.in_channels, 2)
        self.token_grid(tuple(x.shape[1:]))
        return self.mlp(self.proj(self.standardize(self.coefficients(x)))).unsqueeze(1)

    def example_input(self, batch_size: int = 2) -> Tensor:
        return torch.randn(batch_size, 2 * self.keep, self.in_channels)


class DCTDecoder(Decoder):
    """The mirror of the `dct1d` encoder: `(B, 1, in_dim)` -> `(B, frames, C)`, a sum of the
    lowest `keep` DCT cosines per channel.

    Args:
        in_dim: latent channels of the token. Default: the quantizer's dim in a tokenizer.
        out_channels: channels C per frame.
        frames: frames T of the output.
        keep: DCT frequencies per channel (the lowest ones); at most `frames`.
        hidden: hidden size of a residual MLP before the linear map; 0: none.
    """

    example_config: ClassVar[dict] = {**_TINY, "in_dim": 8, "out_channels": 3, "frames": 8}

    def __init__(self, in_dim: int | None = None, out_channels: int = 2, frames: int = 60, keep: int = 12, hidden: int = 0):
        super().__init__()
        in_dim = require_dim(in_dim, "in_dim")
        _check_keep(keep, "dct1d decoder")
        if frames < keep:
            raise ValueError(f"dct1d decoder: frames={frames} is less than keep={keep}")
        self.in_dim, self.out_channels, self.frames, self.keep = in_dim, out_channels, frames, keep
        coefficients = keep * out_channels
        self.mlp = _mlp(in_dim, hidden)
        self.proj = _linear(in_dim, coefficients)
        self.standardize = Standardizer(coefficients, measure=False)  # the encoder's, once tied
        self.register_buffer("basis", dct_basis(frames, keep), persistent=False)

    def forward(self, z: Tensor) -> Tensor:
        check_layout(z, "dct1d decoder", "BLD", self.in_dim, 2)
        if z.shape[1] != 1:
            raise ValueError(f"dct1d decoder: takes one token per sequence, got {z.shape[1]}")
        c = self.standardize.inverse(self.proj(self.mlp(z[:, 0])))
        c = c.reshape(-1, self.keep, self.out_channels)
        return torch.einsum("kt,bkc->btc", self.basis.to(c.dtype), c)

    def tie_to(self, encoder: Encoder) -> None:
        """Undo the standardization of a `dct1d` encoder with the same coefficients."""
        if isinstance(encoder, DCTEncoder) and encoder.keep == self.keep and encoder.in_channels == self.out_channels:
            self.standardize = encoder.standardize

    def example_input(self, batch_size: int = 2) -> Tensor:
        return torch.randn(batch_size, 1, self.in_dim)
