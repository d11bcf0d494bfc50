"""The interfaces every component implements: Encoder, Quantizer, Decoder, Loss, Trainer.

Conventions shared by all of them, so that none of core assumes a fixed grid, a fixed length
or a discrete code:

* Latents are channels-last: `(B, *grid, D)`. The grid may be 1D (a sequence, `(B, L, D)`),
  2D (`(B, H, W, D)`), 3D (`(B, T, H, W, D)`) or anything else a method needs (a triplane is
  `(B, 3, H, W, D)`). Variable-length sequences carry a boolean `mask` of shape `(B, L)`.
* Indices are int64 `(B, *grid, *index_shape)`: `index_shape` is `()` for one code per token
  and `(n,)` for residual stages or heads. A continuous bottleneck has no indices.
* Encoders and decoders work on *normalized* inputs; the Tokenizer applies the modality's
  recorded normalization, so users never handle statistics themselves.
* A `DiscreteEncoder` emits token indices itself (a fitted vocabulary such as WordPiece, or
  a fixed codec) and pairs with a `DiscreteDecoder`; a tokenizer built on them has no
  quantizer, and its inputs need not be tensors (text is a list of strings).
* Most trainers provide a gradient step; a `FitTrainer` fits the model in one pass over the
  data instead (a vocabulary, k-means bins), and `tokcore train` calls its `fit`.
"""

from tokcore.interfaces.data import Dataset
from tokcore.interfaces.modality import Modality
from tokcore.interfaces.model import (
                                      Decoder,
                                      DiscreteDecoder,
                                      DiscreteEncoder,
                                      Encoder,
                                      Quantizer,
                                      QuantizerOutput,
                                      TokenizerOutput,
                                      Tokens,
                                      VariableLengthEncoder,
                                      bits_per_token,
                                      require_dim,
)
from tokcore.interfaces.training import (
                                      FitTrainer,
                                      Loss,
                                      LossOutput,
                                      StepOutput,
                                      Trainer,
)

__all__ = ["Dataset", "Decoder", "DiscreteDecoder", "DiscreteEncoder", "Encoder", "FitTrainer", "Loss", "LossOutput",
           "Modality", "Quantizer", "QuantizerOutput", "StepOutput", "TokenizerOutput", "Tokens", "Trainer",
           "VariableLengthEncoder", "bits_per_token", "require_dim"]
