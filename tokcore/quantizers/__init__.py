"""Core's built-in quantizers, registered under the entry-point group `tokcore.quantizers`.

| name       | class      | indices                 |
|------------|------------|-------------------------|
| `vq`       | `VQ`       | `(...)` or `(..., heads)` |
| `fsq`      | `FSQ`      | `(...)`                 |
| `lfq`      | `LFQ`      | `(...)`                 |
| `rvq`      | `RVQ`      | `(..., stages)`         |
| `rfsq`     | `RFSQ`     | `(..., stages)`         |
| `identity` | `Identity` | none (continuous)       |
"""

from tokcore.quantizers.fsq import FSQ
from tokcore.quantizers.identity import Identity
from tokcore.quantizers.lfq import LFQ
from tokcore.quantizers.residual import RFSQ, RVQ, ResidualQuantizer
from tokcore.quantizers.vq import VQ

__all__ = ["FSQ", "Identity", "LFQ", "RFSQ", "RVQ", "ResidualQuantizer", "VQ"]
