"""What `tokcore eval` asks of plugins: baseline codecs and feature networks.

A **baseline** is a classical codec (DCT for trajectories, JPEG and bicubic for images, H.264
for video, a coarse grid for depth) that the evaluation runs beside the tokenizer on the very
same samples and at the tokenizer's own rate, so a table says what the learned tokens buy.
Baselines are components: register subclasses under the entry-point group
`tokcore.baselines`, and `tokcore eval` runs every registered baseline that `applies_to` the
tokenizer's modality (or the ones named with `--baselines`).

A **feature extractor** maps raw samples to feature vectors for a Fréchet distance (FID,
FVD, or an honestly named `fd_vgg16`). The modality supplies them (`Modality.feature_extractors`),
from weight files on disk; core streams their statistics and computes the distances.

Metrics themselves are the modality's (`Modality.metric_totals`); pictures too
(`Modality.eval_pictures`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

from torch import Tensor

# A baseline's methods take the modality spec, `tokcore.interfaces.modality.Modality`; that
# module imports this one, so here it is only an alias for the annotations.
Modality = Any


class BudgetTooSmall(ValueError):
    """A baseline has no setting at or under the requested bits (that point is left out)."""


@dataclass
class Coded:
    """A batch through a baseline codec.

    Args:
        recon: the decoded batch, raw units, the shape of the input.
        bits: `(B,)` bits each sample cost.
        setting: what was chosen, for the table ("quality 31", "12 coef x 5 bit").
    """

    recon: Any
    bits: Tensor
    setting: str


class Baseline(ABC):
    """A classical codec run beside the tokenizer at its rate; register under `tokcore.baselines`.

    Constructor parameters are optional settings (the registry builds baselines with
    defaults). `code` must spend at most `bits` per sample: the best setting at or under
    the budget, chosen per sample or per batch as the codec allows, so a baseline never wins
    by spending more.
    """

    label: ClassVar[str] = ""  # the column name in tables ("JPEG", "H.264")
    fits: ClassVar[bool] = False  # whether `fit` needs training samples (they are loaded only then)

    @abstractmethod
    def applies_to(self, modality: Modality) -> bool:
        """Whether this codec can code samples of `modality`."""

    def fit(self, train: Tensor, modality: Modality) -> None:
        """Learn what the codec needs from raw training samples `train` (quantization ranges,
        say); called once before `code`. Does nothing by default."""

    @abstractmethod
    def code(self, x: Tensor, bits: float, modality: Modality) -> Coded:
        """Encode and decode the raw batch `x` with at most `bits` bits per sample; raise
        `BudgetTooSmall` when no setting fits."""


class FeatureExtractor(ABC):
    """A frozen network that maps a raw batch to `(B, D)` features for a Fréchet distance."""

    name: str = ""  # the metric's name: "fid", "fvd", "fd_vgg16"
    dim: int = 0

    @abstractmethod
    def __call__(self, x: Tensor) -> Tensor:
        """Raw batch -> `(B, dim)` float features."""
