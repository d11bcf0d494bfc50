"""tokcore: train, run and extend neural tokenizers.

`import tokcore` is light (no torch): the registry lists components from package metadata.
The torch-based parts (interfaces, Tokenizer, ...) are imported on first use. Plugins import
from `tokcore.api`, the declared plugin API, which holds these names and the rest of what a
plugin subclasses or calls.
"""

from __future__ import annotations

import importlib
from typing import Any

from tokcore import registry
from tokcore._version import __version__
from tokcore.errors import (
    ConfigError,
    InputError,
    PluginLoadError,
    RegistryError,
    TokcoreError,
)

# The torch-based public names, each imported on first use. They are the same objects as
# `tokcore.api`'s (which says where each lives), so the two can never disagree.
_LAZY = ("Encoder", "Decoder", "Quantizer", "Loss", "Trainer", "DiscreteEncoder", "DiscreteDecoder", "FitTrainer",
         "QuantizerOutput", "LossOutput", "StepOutput", "Modality", "Dataset", "Tokenizer", "Tokens",
         "build_tokenizer", "hookimpl", "load_tokenizer", "TokenStore")

__all__ = ["registry", "__version__", "TokcoreError", "ConfigError", "InputError", "RegistryError",
           "PluginLoadError", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module("tokcore.api"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tokcore' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
