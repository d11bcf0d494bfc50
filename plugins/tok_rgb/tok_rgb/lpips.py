"""LPIPS (Zhang et al., "The Unreasonable Effectiveness of Deep Features as a Perceptual
Metric", CVPR 2018), version 0.1, with real pretrained weights read from a local file.

    d(x, y) = sum_l mean_hw( w_l . (f_l(x)/|f_l(x)| - f_l(y)/|f_l(y)|)^2 )

where f_l are five ReLU feature maps of an ImageNet network (AlexNet or VGG16), normalized to
unit length along channels, and w_l the learned non-negative linear weights (a 1x1 conv).
Images are in [-1, 1]; LPIPS's scaling layer maps them to ImageNet statistics first.
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import Tensor, nn

from tok_rgb.features import feature_network
from tok_rgb.weights import find_lpips_weights, load_lpips_weights

# LPIPS's scaling layer: (x - shift) / scale for x in [-1, 1] ~ ImageNet mean/std on [0, 1].
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)


def unit_channels(x: Tensor, eps: float = 1e-10) -> Tensor:
    """Each spatial position's feature vector divided by its length (LPIPS's eps)."""
    return x / (x.square().sum(1, keepdim=True).sqrt() + eps)


class LPIPS(nn.Module):
    """The LPIPS distance between image batches `(B, 3, H, W)` in [-1, 1]; returns `(B,)`.

    The network is frozen and in eval mode; gradients flow to the inputs only.

    Args:
        features: a module returning a list of feature maps (`tok_rgb.features`).
        linear: use learned per-channel weights (LPIPS); False sums the channels equally
            (the "baseline" variant, for feature networks without LPIPS weights).
        shift: per-channel value subtracted from the [-1, 1] input.
        scale: per-channel divisor after the shift.
    """

    def __init__(self, features: nn.Module, linear: bool = True,
                 shift: tuple[float, ...] = SHIFT, scale: tuple[float, ...] = SCALE):
        super().__init__()
        self.net = features
        self.linear = linear
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in features.channels) if linear else None
        self.register_buffer("shift", torch.tensor(shift).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(scale).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "LPIPS":
        return super().train(False)  # always eval: there is no dropout or norm to train

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        fx = self.net((x.float() - self.shift) / self.scale)
        fy = self.net((y.float() - self.shift) / self.scale)
        total = torch.zeros(x.shape[0], device=x.device)
        for i, (a, b) in enumerate(zip(fx, fy)):
            d = (unit_channels(a) - unit_channels(b)).square()
            d = self.lins[i](d) if self.linear else d.sum(1, keepdim=True)
            total = total + d.mean((1, 2, 3))
        return total


def build_lpips(net: str = "alex", path: str | None = None) -> LPIPS:
    """LPIPS with the pretrained backbone and linear layers of `net` ("alex" or "vgg"), from
    `path` or the default lookup (`tok_rgb.weights.find_lpips_weights`)."""
    return _cached(net, str(find_lpips_weights(net, path)))


@lru_cache(maxsize=4)
def _cached(net: str, file: str) -> LPIPS:
    model = LPIPS(feature_network(net))
    model.load_state_dict(load_lpips_weights(file, net), strict=True)
    return model


def build_timm_lpips(model: str, weights: str) -> LPIPS:
    """The unweighted LPIPS variant on a timm feature network with local pretrained weights."""
    from tok_rgb.features import TimmFeatures

    features = TimmFeatures(model, weights)
    mean, std = features.mean or (0.485, 0.456, 0.406), features.std or (0.229, 0.224, 0.225)
    # [-1, 1] -> [0, 1] -> the model's statistics, as one shift and scale
    shift = tuple(2 * m - 1 for m in mean)
    scale = tuple(2 * s for s in std)
    return LPIPS(features, linear=False, shift=shift, scale=scale)
