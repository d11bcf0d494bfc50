"""`identity`: a continuous bottleneck, for methods whose latents are not discrete."""

from __future__ import annotations

import torch
from torch import Tensor

from tokcore.interfaces import Quantizer, QuantizerOutput, require_dim


class Identity(Quantizer):
    """Passes latents through unchanged: no indices, no losses, no statistics.

    Args:
        dim: channels of the latents. Default: the encoder's out_dim in a tokenizer.
    """

    example_config = {"dim": 16}  # tiny, for the contract kit

    def __init__(self, dim: int | None = None):
        super().__init__()
        dim = require_dim(dim, "dim")
        self.dim, self.codebook_size, self.index_shape = dim, None, ()

    def forward(self, z: Tensor) -> QuantizerOutput:
        return QuantizerOutput(quantized=z, indices=None)

    def indices_to_codes(self, indices: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
        raise TypeError("the identity quantizer is continuous: it has no indices to decode")
