"""`tokcore.load_tokenizer`: a trained tokenizer from its run or checkpoint directory alone."""

from __future__ import annotations

from pathlib import Path

import torch

from tokcore.config.spec import ModelSpec
from tokcore.run.checkpoint import Checkpoint, load_weights
from tokcore.tokenizer import Tokenizer, build_tokenizer


def load_tokenizer(path: str | Path, *, ema: bool = True, device: str | torch.device = "cpu") -> Tokenizer:
    """Rebuild a tokenizer from `path` (a run directory: its latest checkpoint; or a checkpoint
    directory) with no config file: components, modality and normalization come from its
    tokenizer.json. Uses the EMA weights when the run kept them, unless `ema=False`. The
    result is in eval mode; `encode`/`decode` apply the recorded normalization.
    """
    ckpt = Checkpoint(path)
    meta = ckpt.meta()
    tok = build_tokenizer(ModelSpec.from_config(meta["model"], str(ckpt.path / "tokenizer.json")).config(),
                          meta["modality"], tuple(meta["input_shape"]))
    load_weights(tok, ckpt.weights(ema))
    tok.checkpoint = str(ckpt.path)
    return tok.to(device).eval()
