"""The model side of the contract: Tokens, Encoder, Decoder, their discrete variants,
Quantizer and what they return (see the package docstring for the conventions)."""


from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from tokcore.errors import ConfigError


@dataclass
class Tokens:
    """Encoded samples: discrete `indices` `(B, *grid, *index_shape)`, or continuous
    `latents` `(B, *grid, D)` for a continuous bottleneck; `mask` `(B, *grid)` marks valid
    tokens of variable-length sequences; `offsets` `(B, *grid, 2)`, when the encoder knows
    them, is the `[start, end)` span of the input each token covers (characters, for text);
    `side` holds per-sample side information `{name: (B,) tensor}` that decoding needs (the
    statistics of a per-image normalization, see `Modality.side_info`), or None."""

    indices: Tensor | None = None
    latents: Tensor | None = None
    mask: Tensor | None = None
    offsets: Tensor | None = None
    side: dict[str, Tensor] | None = None

    def __post_init__(self) -> None:
        if (self.indices is None) == (self.latents is None):
            raise ValueError("Tokens needs exactly one of indices or latents")

    @property
    def data(self) -> Tensor:
        return self.indices if self.indices is not None else self.latents  # type: ignore[return-value]


def require_dim(value: int | None, key: str) -> int:
    """A latent width a tokenizer fills in when a config leaves it out: a quantizer's `dim`
    (the encoder's `out_dim`) or a decoder's `in_dim` (the quantizer's `dim`). Default such a
    parameter to None and pass it through here: built alone, the component needs it given."""
    if value is None:
        source = "the encoder's out_dim" if key == "dim" else "the quantizer's dim"
        raise ConfigError(f"not set; give it, or build the component inside a tokenizer, which sets it to {source}",
                          key=key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"must be a positive integer, got {value!r}", key=key)
    return value


class Encoder(nn.Module, ABC):
    """Maps a normalized input batch to channels-last latents `(B, *grid, out_dim)`."""

    out_dim: int

    @abstractmethod
    def forward(self, x: Tensor) -> Tensor:
        """`x`: a batch in the modality's layout, normalized."""

    @abstractmethod
    def token_grid(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The latent grid for one sample of `input_shape` (no batch axis)."""

    @abstractmethod
    def example_input(self, batch_size: int = 2) -> Tensor:
        """A small valid input batch (used by the contract kit and `--dry-run`)."""


class VariableLengthEncoder(Encoder):
    """An encoder to a 1D token sequence whose length is chosen per sample (TiTok): `forward(x,
    num_tokens)` returns `(B, max(num_tokens), out_dim)`, sample b's tokens being its first
    `num_tokens[b]` (the rest is padding); without `num_tokens`, every sample gets the most.
    `token_grid` is `(max_tokens,)`. Its decoder takes the tokens' `mask` and the output `size`
    as keyword arguments. A tokenizer built on one draws the count per sample in training,
    uniformly from `num_tokens_range`, and `encode(x, num_tokens=k)` chooses it.
    """

    num_tokens_range: tuple[int, int]  # (fewest, most) tokens per sample

    @abstractmethod
    def forward(self, x: Tensor, num_tokens: Tensor | None = None) -> Tensor:  # type: ignore[override]
        ...

    def check_num_tokens(self, num_tokens: int | Sequence[int] | Tensor | None, batch: int,
                         device: torch.device | None = None) -> Tensor:
        """`num_tokens` (None: the most; an int; or one per sample) as an int64 `(batch,)`
        tensor, each within [1, most]; ValueError naming the sample otherwise."""
        lo, hi = self.num_tokens_range
        if num_tokens is None:
            return torch.full((batch,), hi, dtype=torch.long, device=device)
        counts = torch.as_tensor(num_tokens, dtype=torch.long, device=device)
        counts = counts.expand(batch) if counts.dim() == 0 else counts
        if counts.shape != (batch,):
            raise ValueError(f"num_tokens gives {counts.numel()} counts for a batch of {batch}; give one, or one per sample")
        bad = ((counts < 1) | (counts > hi)).nonzero().flatten()
        if len(bad):
            b = int(bad[0])
            raise ValueError(f"num_tokens[{b}] = {int(counts[b])} is outside [1, {hi}] (this encoder's max_tokens)")
        return counts

    def draw_num_tokens(self, batch: int, device: torch.device | None = None) -> Tensor:
        """Token counts for a training batch: uniform in `num_tokens_range`, one per sample."""
        lo, hi = self.num_tokens_range
        return torch.randint(lo, hi + 1, (batch,)).to(device)


class Decoder(nn.Module, ABC):
    """Maps channels-last latents `(B, *grid, in_dim)` back to a normalized output batch.

    Decoders that need more than the latents (query coordinates, a target size) take them
    as keyword arguments of `forward`.
    """

    in_dim: int

    @abstractmethod
    def forward(self, z: Tensor, **cond: Any) -> Tensor:
        ...

    @abstractmethod
    def example_input(self, batch_size: int = 2) -> Tensor:
        """Small valid latents `(B, *grid, in_dim)` for this decoder."""

    def example_cond(self, z: Tensor) -> dict[str, Any]:
        """Keyword arguments `forward` needs beside the latents `z` (none by default)."""
        return {}

    def tie_to(self, encoder: "Encoder") -> None:
        """Share state with the encoder this decoder mirrors; a `Tokenizer` calls it once when
        it is assembled. Default: nothing (a decoder that inverts a normalization its encoder
        measures on data takes the encoder's statistics here)."""


class DiscreteEncoder(Encoder):
    """An encoder that emits discrete tokens itself, with no quantizer after it: a fitted
    vocabulary (WordPiece, BPE) or a fixed codec. Its input is a normalized batch in
    whatever form the modality gives (a tensor, or a list of strings for text); `forward`
    returns `Tokens` with int64 indices in `[0, codebook_size)` and, for variable-length
    sequences, a mask. A tokenizer built on one pairs it with a `DiscreteDecoder`.

    Non-tensor state (a vocabulary) is kept in the state dict through `get_extra_state`
    as a uint8 tensor, so it travels in `model.safetensors` like weights do, and the hash
    of that file identifies the vocabulary a token store was made with.
    """

    out_dim = 0
    codebook_size: int
    index_shape: tuple[int, ...] = ()

    @abstractmethod
    def forward(self, x: Any) -> Tokens:  # type: ignore[override]
        ...

    @abstractmethod
    def token_grid(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The (largest) token grid of one sample; shorter sequences are masked."""

    @abstractmethod
    def example_input(self, batch_size: int = 2) -> Any:
        """A small valid normalized batch (used by the contract kit)."""


class DiscreteDecoder(Decoder):
    """The inverse of a `DiscreteEncoder`: int64 indices `(B, *grid, *index_shape)` (and the
    mask of valid tokens) back to a normalized batch in the modality's form."""

    in_dim = 0

    @abstractmethod
    def forward(self, indices: Tensor, mask: Tensor | None = None) -> Any:  # type: ignore[override]
        ...

    @abstractmethod
    def example_input(self, batch_size: int = 2) -> Tensor:
        """Small valid int64 indices for this decoder."""


@dataclass
class QuantizerOutput:
    """What every quantizer returns.

    Attributes:
        quantized: `(..., dim)`, same shape as the input; straight-through in training.
        indices: int64 `(..., *index_shape)`, or None for a continuous bottleneck.
        losses: auxiliary losses, already weighted; the trainer adds them to the total.
        stats: detached figures to log (codebook usage, perplexity, dead codes, ...).
    """

    quantized: Tensor
    indices: Tensor | None
    losses: dict[str, Tensor] = field(default_factory=dict)
    stats: dict[str, Tensor] = field(default_factory=dict)


class Quantizer(nn.Module, ABC):
    """The bottleneck: latents `(..., dim)` to codes and indices.

    `indices_to_codes(out.indices)` must equal `out.quantized` exactly in eval mode: a token
    store holds indices only, and decoding them must give what training saw.
    """

    dim: int
    codebook_size: int | None  # per index position; None for a continuous bottleneck
    index_shape: tuple[int, ...] = ()

    @abstractmethod
    def forward(self, z: Tensor) -> QuantizerOutput:
        ...

    @abstractmethod
    def indices_to_codes(self, indices: Tensor) -> Tensor:
        """int64 `(..., *index_shape)` -> `(..., dim)`."""

    @property
    def is_discrete(self) -> bool:
        return self.codebook_size is not None

    @property
    def bits_per_token(self) -> float:
        """Bits one token carries (0 for a continuous bottleneck)."""
        return bits_per_token(self.codebook_size, self.index_shape)


def bits_per_token(codebook_size: int | None, index_shape: Sequence[int] = ()) -> float:
    """Bits one token carries: log2(codebook_size) for each of its `index_shape` indices, 0 for
    continuous latents (no codebook). The logarithm is taken in float32, as every
    tokenizer.json written so far records it."""
    if codebook_size is None:
        return 0.0
    return math.prod(index_shape) * float(torch.log2(torch.tensor(float(codebook_size))))


@dataclass
class TokenizerOutput:
    """What a tokenizer's training forward returns (all in normalized space).

    Attributes:
        recon: the decoder's output.
        quant: the quantizer's output.
        latents: the encoder's output, before quantization.
    """

    recon: Tensor
    quant: QuantizerOutput
    latents: Tensor
