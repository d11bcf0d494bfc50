"""tok-text: wordPiece text tokenizer for captions and other sequence modalities, for tokcore (4M)."""

from importlib.metadata import version as _version

__version__ = _version("tok-text")
