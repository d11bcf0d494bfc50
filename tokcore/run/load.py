"""`tokcore.load_tokenizer`: a trained tokenizer from its run or checkpoint directory alone."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from tokcore.tokenizer import Tokenizer, build_tokenizer


def load_tokenizer(path: str | Path, *, ema: bool = True, device: str | torch.device = "cpu") -> Tokenizer:
    """Rebuild a tokenizer from `path` (a run directory: its latest checkpoint; or a checkpoint
    directory) with no config file: components, modality and normalization come from its
    tokenizer.json. Uses the EMA weights when the run kept them, unless `ema=False`. The
    result is in eval mode; `encode`/`decode` apply the recorded normalization.
    """
    from tokcore.run.checkpoint import load_weights, resolve_checkpoint

    ckpt = resolve_checkpoint(path)
    meta = json.loads((ckpt / "tokenizer.json").read_text(encoding="utf-8"))
    tok = build_tokenizer(meta["model"], meta.get("modality"), tuple(meta["input_shape"]))
    weights = ckpt / "model_ema.safetensors"
    if not (ema and weights.is_file()):
        weights = ckpt / "model.safetensors"
    load_weights(tok, weights)
    tok.checkpoint = str(ckpt)
    return tok.to(device).eval()
