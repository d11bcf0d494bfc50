"""tok-depth: depth tokenizers for tokcore: metric depth and disparity with invalid-pixel masks."""

from importlib.metadata import version as _version

__version__ = _version("tok-depth")
