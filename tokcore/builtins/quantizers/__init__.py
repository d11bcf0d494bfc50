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

from tokcore.builtins.quantizers.fsq import FSQ
from tokcore.builtins.quantizers.identity import Identity
from tokcore.builtins.quantizers.lfq import LFQ
from tokcore.builtins.quantizers.residual import RFSQ, RVQ, ResidualQuantizer
from tokcore.builtins.quantizers.vq import VQ

__all__ = ["FSQ", "Identity", "LFQ", "RFSQ", "RVQ", "ResidualQuantizer", "VQ"]
