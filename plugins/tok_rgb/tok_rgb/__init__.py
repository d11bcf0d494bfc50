"""tok-rgb: image and video tokenizers for tokcore (4M, Cosmos-style, VIMPAC)."""

from importlib.metadata import version as _version

__version__ = _version("tok-rgb")
