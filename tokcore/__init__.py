"""tokcore: train, run and extend neural tokenizers.

`import tokcore` is light (no torch): the registry lists components from package metadata.
The torch-based parts (interfaces, Tokenizer, ...) are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from tokcore import registry
from tokcore._version import __version__
from tokcore.errors import ConfigError, InputError, PluginLoadError, RegistryError, TokcoreError

_LAZY = {
    "Encoder": "tokcore.interfaces",
    "Decoder": "tokcore.interfaces",
    "Quantizer": "tokcore.interfaces",
    "Loss": "tokcore.interfaces",
    "Trainer": "tokcore.interfaces",
    "DiscreteEncoder": "tokcore.interfaces",
    "DiscreteDecoder": "tokcore.interfaces",
    "FitTrainer": "tokcore.interfaces",
    "QuantizerOutput": "tokcore.interfaces",
    "LossOutput": "tokcore.interfaces",
    "StepOutput": "tokcore.interfaces",
    "Modality": "tokcore.interfaces.modality",
    "Dataset": "tokcore.interfaces.data",
    "Tokenizer": "tokcore.tokenizer",
    "Tokens": "tokcore.interfaces",
    "build_tokenizer": "tokcore.tokenizer",
    "hookimpl": "tokcore.registry.hookspecs",
    "load_tokenizer": "tokcore.run.load",
    "TokenStore": "tokcore.tokens.store",
}

__all__ = ["registry", "__version__", "TokcoreError", "ConfigError", "InputError", "RegistryError",
           "PluginLoadError", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tokcore' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
