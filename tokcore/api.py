"""The declared plugin API: everything a plugin subclasses or calls, and nothing else.

A plugin imports from here, from `tokcore.nn` (the documented building blocks), from
`tokcore.testing` (the contract kit, in its tests) and from the top-level `tokcore` package;
nothing else of core. The import-linter contracts in `.importlinter` hold plugins to it, so
core can move its modules without breaking a third party: when a name below moves, only the
table changes.

    from tokcore.api import Dataset, Encoder, split_indices

Each name is imported on first use (PEP 562), so a hook module that only needs `hookimpl`
does not import torch, and `tokcore --help` stays fast. The `TYPE_CHECKING` block states the same names as plain imports for type checkers and IDEs
(tests/test_api.py keeps the two in step).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# name -> "module:attribute", grouped by what a plugin uses them for
_EXPORTS: dict[str, str] = {
    # the contract: what an encoder, quantizer, decoder, loss or trainer subclasses, and what it returns
    "Encoder": "tokcore.interfaces:Encoder",
    "Decoder": "tokcore.interfaces:Decoder",
    "DiscreteEncoder": "tokcore.interfaces:DiscreteEncoder",
    "DiscreteDecoder": "tokcore.interfaces:DiscreteDecoder",
    "VariableLengthEncoder": "tokcore.interfaces:VariableLengthEncoder",
    "Quantizer": "tokcore.interfaces:Quantizer",
    "QuantizerOutput": "tokcore.interfaces:QuantizerOutput",
    "Tokens": "tokcore.interfaces:Tokens",
    "TokenizerOutput": "tokcore.interfaces:TokenizerOutput",
    "Loss": "tokcore.interfaces:Loss",
    "LossOutput": "tokcore.interfaces:LossOutput",
    "Trainer": "tokcore.interfaces:Trainer",
    "FitTrainer": "tokcore.interfaces:FitTrainer",
    "StepOutput": "tokcore.interfaces:StepOutput",
    "require_dim": "tokcore.interfaces:require_dim",
    # modalities and datasets: what a modality plugin subclasses, and the helpers it builds on
    "Modality": "tokcore.interfaces.modality:Modality",
    "SIDE_KEY": "tokcore.interfaces.modality:SIDE_KEY",
    "write_array": "tokcore.interfaces.modality:write_array",
    "write_array_samples": "tokcore.interfaces.modality:write_array_samples",
    "Dataset": "tokcore.interfaces.data:Dataset",
    "split_indices": "tokcore.builtins.datasets:split_indices",
    "load_array": "tokcore.runtime.arrays:load_array",
    "fill_gaps": "tokcore.interfaces.modality:fill_gaps",
    # evaluation (`tokcore eval`): baseline codecs beside the tokenizer, Fréchet feature networks
    "Baseline": "tokcore.interfaces.evaluation:Baseline",
    "BudgetTooSmall": "tokcore.interfaces.evaluation:BudgetTooSmall",
    "Coded": "tokcore.interfaces.evaluation:Coded",
    "FeatureExtractor": "tokcore.interfaces.evaluation:FeatureExtractor",
    # built-in components a plugin extends or composes (tok-rgb's vqgan, perceptual loss)
    "VQVAETrainer": "tokcore.builtins.trainers:VQVAETrainer",
    "AutoencoderTerms": "tokcore.builtins.trainers:AutoencoderTerms",
    "ReconstructionLoss": "tokcore.builtins.losses:ReconstructionLoss",
    "masked_mean": "tokcore.builtins.losses:masked_mean",
    # errors: raise these so the CLI prints one line and exits 2
    "TokcoreError": "tokcore.errors:TokcoreError",
    "ConfigError": "tokcore.errors:ConfigError",
    "InputError": "tokcore.errors:InputError",
    "RegistryError": "tokcore.errors:RegistryError",
    "PluginLoadError": "tokcore.errors:PluginLoadError",
    # hooks (entry-point group tokcore.plugins): extra CLI commands, training events
    "hookimpl": "tokcore.registry.hookspecs:hookimpl",
    # files: atomic writes (temporary file, then rename)
    "atomic_write_bytes": "tokcore.runtime.io:atomic_write_bytes",
    "atomic_write_text": "tokcore.runtime.io:atomic_write_text",
    "atomic_write_json": "tokcore.runtime.io:atomic_write_json",
    "atomic_write_figure": "tokcore.runtime.io:atomic_write_figure",
    "atomic_directory": "tokcore.runtime.io:atomic_directory",
    # a tokenizer and its tokens: build from a model config, load a run, read a token store, read a config
    "Tokenizer": "tokcore.tokenizer:Tokenizer",
    "build_tokenizer": "tokcore.tokenizer:build_tokenizer",
    "load_tokenizer": "tokcore.run:load_tokenizer",
    "TokenStore": "tokcore.tokens.store:TokenStore",
    "load_config": "tokcore.config:load",
    # importers (entry-point group tokcore.importers): a tokenizer released elsewhere, as a run directory
    "Importer": "tokcore.run.importing:Importer",
    "Imported": "tokcore.run.importing:Imported",
    # a split through the whole pipeline (tokenize, then decode), and codebook statistics
    "roundtrip": "tokcore.tokens.roundtrip:roundtrip",
    "Roundtrip": "tokcore.tokens.roundtrip:Roundtrip",
    "codebook_usage": "tokcore.metrics.codebook:codebook_usage",
    "DCTCodec": "tokcore.metrics.codecs:DCTCodec",
}

__all__ = list(_EXPORTS)

if TYPE_CHECKING:
    from tokcore.builtins.datasets import split_indices
    from tokcore.builtins.losses import ReconstructionLoss, masked_mean
    from tokcore.builtins.trainers import AutoencoderTerms, VQVAETrainer
    from tokcore.config import load as load_config
    from tokcore.errors import (
        ConfigError,
        InputError,
        PluginLoadError,
        RegistryError,
        TokcoreError,
    )
    from tokcore.interfaces import (
        Decoder,
        DiscreteDecoder,
        DiscreteEncoder,
        Encoder,
        FitTrainer,
        Loss,
        LossOutput,
        Quantizer,
        QuantizerOutput,
        StepOutput,
        TokenizerOutput,
        Tokens,
        Trainer,
        VariableLengthEncoder,
        require_dim,
    )
    from tokcore.interfaces.data import Dataset
    from tokcore.interfaces.evaluation import (
        Baseline,
        BudgetTooSmall,
        Coded,
        FeatureExtractor,
    )
    from tokcore.interfaces.modality import (
        SIDE_KEY,
        Modality,
        fill_gaps,
        write_array,
        write_array_samples,
    )
    from tokcore.metrics.codebook import codebook_usage
    from tokcore.metrics.codecs import DCTCodec
    from tokcore.registry.hookspecs import hookimpl
    from tokcore.run import load_tokenizer
    from tokcore.run.importing import Imported, Importer
    from tokcore.runtime.arrays import load_array
    from tokcore.runtime.io import (
        atomic_directory,
        atomic_write_bytes,
        atomic_write_figure,
        atomic_write_json,
        atomic_write_text,
    )
    from tokcore.tokenizer import Tokenizer, build_tokenizer
    from tokcore.tokens.roundtrip import (
        Roundtrip,
        roundtrip,
    )
    from tokcore.tokens.store import TokenStore


def __getattr__(name: str) -> Any:
    target = _EXPORTS.get(name)
    if target is None:
        raise AttributeError(f"module 'tokcore.api' has no attribute '{name}'")
    module, _, attribute = target.partition(":")
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value  # imported once; later lookups do not come here
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
