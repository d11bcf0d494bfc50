"""`tokcore decode`: a token store back to the modality's files, through the tokenizer that
made it (checked by the hash of its weights)."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tokcore.errors import ConfigError, TokcoreError
from tokcore.runtime.io import atomic_write_text
from tokcore.runtime.paths import output_folder
from tokcore.tokens.store import TokenStore, key_path
from tokcore.tokens.tokenize import FRAMES_KEY, SIZE_KEY


def decode_store(checkpoint: str | Path, tokens: str | Path, output: str | Path, *, batch_size: int = 64,
                 limit: int | None = None, device: str = "auto", options: dict[str, Any] | None = None) -> tuple[int, int]:
    """Decode every sample of the store (or the first `limit`) and write it with the
    modality's `write_decoded` at `output/<key>` (plus suffix), undoing a per-sample
    normalization with the side information in the samples' metadata; a clip comes back with
    the frame count and size recorded at tokenize time (`FRAMES_KEY`, `SIZE_KEY`). `options` are keyword
    arguments of the decoder's sampling (a diffusion decoder's `seed`, `steps`, ...), checked
    against its `forward`. Returns (samples, files)."""
    from tokcore.interfaces import Tokens
    from tokcore.run import Checkpoint, load_tokenizer
    from tokcore.runtime.device import resolve_device
    from tokcore.tokens.store import sha256_file

    output_folder(output)
    store = TokenStore(tokens)
    ckpt = Checkpoint(checkpoint)
    if sha256_file(ckpt.weights()) != store.manifest["weights_sha256"]:
        raise TokcoreError(f"{tokens} was made by another tokenizer ({store.manifest['checkpoint']}); decode it "
                           "with that checkpoint")
    tok = load_tokenizer(ckpt.path, device=resolve_device(device))
    options = dict(options or {})
    check_options(tok.decoder, options)
    write = tok.modality.write_decoded
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    keys = list(store)[:limit] if limit is not None else list(store)
    rows, files = [], 0
    groups: dict[tuple, list[str]] = {}
    for k in keys:  # one decoder call per token shape, clip length and sample size
        size = store.meta(k).get(SIZE_KEY)
        groups.setdefault((store.shape(k), store.meta(k).get(FRAMES_KEY), tuple(size) if size else None), []).append(k)
    for (shape, frames, size), ks in groups.items():
        for start in range(0, len(ks), batch_size):
            chunk = ks[start:start + batch_size]
            arr = np.stack([store[k] for k in chunk])
            if store.kind == "indices":
                t = Tokens(indices=torch.from_numpy(arr.astype(np.int64)))
            else:
                t = Tokens(latents=torch.from_numpy(arr.astype(np.float32)))
            t.side = stored_side([store.meta(k) for k in chunk])
            raw = tok.decode(t, frames=frames, size=size, **options)
            for k, x in zip(chunk, raw.cpu() if isinstance(raw, torch.Tensor) else raw):
                written = write(x, out / key_path(k), store.meta(k))
                files += len(written)
                rows.append({"key": k, "files": [p.relative_to(out).as_posix() for p in written],
                             "meta": store.meta(k)})
    order = {k: i for i, k in enumerate(keys)}
    rows.sort(key=lambda r: order[r["key"]])
    atomic_write_text(out / "decoded.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    return len(rows), files


def stored_side(metas: list[dict]) -> dict[str, torch.Tensor] | None:
    """The side information of a chunk of samples, stacked `{name: (B, ...)}`, from their
    metadata (`SIDE_KEY`); None when the tokenizer's normalization has none."""
    from tokcore.interfaces.modality import SIDE_KEY

    sides = [m.get(SIDE_KEY) for m in metas]
    if all(s is None for s in sides):
        return None
    if any(s is None for s in sides):
        raise TokcoreError(f"some samples of the store lack the '{SIDE_KEY}' metadata that decoding needs; "
                           "tokenize them again")
    return {k: torch.tensor([s[k] for s in sides], dtype=torch.float32) for k in sides[0]}


def check_options(decoder: torch.nn.Module, options: dict[str, Any]) -> None:
    """A ConfigError naming the option when `decoder.forward` takes no such keyword-only
    argument (its sampling options: `seed`, `steps`, ...)."""
    accepted = sorted(name for name, p in inspect.signature(decoder.forward).parameters.items()
                      if p.kind is inspect.Parameter.KEYWORD_ONLY and name != "generator")
    for name in options:
        if name not in accepted:
            took = f"it takes {', '.join(f'decoder.{a}' for a in accepted)}" if accepted else "it takes none"
            raise ConfigError(f"the decoder ({type(decoder).__name__}) has no decoding option '{name}'; {took}",
                              key=f"decoder.{name}")
