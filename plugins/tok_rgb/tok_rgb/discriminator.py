"""PatchGAN ("NLayer") discriminator of pix2pix and taming-transformers' VQGAN, 2D or 3D.

It scores overlapping patches rather than the whole picture: `num_layers` stride-2 4x4
convolutions (channels doubling up to 8x), one stride-1 conv and a 1-channel stride-1 conv,
each receptive field a patch of about 70 px for 3 layers. The 3D variant uses 3x4x4 kernels
that stride only in space, so short clips keep their frames and each score sees 3 frames per
layer of context.
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

from tokcore.nn.blocks import group_norm

_CONV = {2: nn.Conv2d, 3: nn.Conv3d}
_NORM = {2: nn.BatchNorm2d, 3: nn.BatchNorm3d}


def _norm(dims: int, kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return _NORM[dims](channels)
    if kind == "group":
        return group_norm(channels)
    return nn.Identity()


class PatchDiscriminator(nn.Module):
    """Real/fake logits per patch: `(B, C, H, W)` -> `(B, 1, h, w)` (or `(B, C, T, H, W)` -> `(B, 1, T', h, w)`).

    Args:
        in_channels: input channels C.
        channels: channels of the first layer (doubled per layer, up to 8x).
        num_layers: stride-2 layers; each halves H and W.
        dims: 2 for images, 3 for video clips.
        norm: "group" (the default: independent of how a batch is split over ranks and
            accumulation steps), "batch" (pix2pix's and taming's choice) or "none".
    """

    def __init__(self, in_channels: int = 3, channels: int = 64, num_layers: int = 3, dims: Literal[2, 3] = 2,
                 norm: Literal["group", "batch", "none"] = "group"):
        super().__init__()
        conv = _CONV[dims]
        kernel = 4 if dims == 2 else (3, 4, 4)
        down = 2 if dims == 2 else (1, 2, 2)
        pad = 1
        layers: list[nn.Module] = [conv(in_channels, channels, kernel, stride=down, padding=pad), nn.LeakyReLU(0.2)]
        width = channels
        for i in range(1, num_layers + 1):
            prev, width = width, channels * min(2**i, 8)
            stride = down if i < num_layers else 1
            layers += [conv(prev, width, kernel, stride=stride, padding=pad, bias=norm == "none"),
                       _norm(dims, norm, width), nn.LeakyReLU(0.2)]
        layers.append(conv(width, 1, kernel, stride=1, padding=pad))
        self.net = nn.Sequential(*layers)
        self.dims, self.num_layers = dims, num_layers
        self.min_side = 3 * 2**num_layers  # each stride-2 layer halves, the two last ones take 1 each
        self.apply(_init)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != self.dims + 2:
            layout = "(B, C, H, W)" if self.dims == 2 else "(B, C, T, H, W)"
            raise ValueError(f"{self.dims}D patch discriminator: input must be {layout}, got shape {tuple(x.shape)}")
        if min(x.shape[-2:]) < self.min_side:
            raise ValueError(f"patch discriminator: H and W must be at least {self.min_side} for num_layers="
                             f"{self.num_layers}, got shape {tuple(x.shape)}; use fewer layers or larger inputs")
        return self.net(x)


def _init(m: nn.Module) -> None:
    """pix2pix's initialization: N(0, 0.02) conv weights, N(1, 0.02) norm scales."""
    if isinstance(m, (nn.Conv2d, nn.Conv3d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm3d, nn.GroupNorm)):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)
