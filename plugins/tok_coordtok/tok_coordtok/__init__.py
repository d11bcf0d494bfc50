"""tok-coordtok: coordTok: coordinate-based video tokenizers with triplane latents, for tokcore."""

from importlib.metadata import version as _version

__version__ = _version("tok-coordtok")
