"""tok-camera: camera-trajectory tokenizers for tokcore (EgoM2P)."""

from importlib.metadata import version as _version

__version__ = _version("tok-camera")
