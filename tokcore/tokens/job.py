"""What a token store is made of: the tokenizer (its checkpoint and the hash of its weights)
and the dataset config. Fixed for the life of a store, so a resumed run must match it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from tokcore.errors import ConfigError, TokcoreError
from tokcore.run import Checkpoint
from tokcore.tokens.store import FORMAT, JOB, SHARDS, sha256_file


@dataclass
class Job:
    """What is tokenized: fixed for the life of a store (a resumed run must match it)."""

    checkpoint: str
    weights: str
    weights_sha256: str
    data: dict[str, Any]
    latent_dtype: str = "float32"
    num_tokens: list[int] | None = None  # [lo, hi]: a variable-length tokenizer's count per sample

    def record(self) -> dict[str, Any]:
        return {"format": FORMAT, **asdict(self)}

    def matches(self, other: dict[str, Any]) -> str | None:
        """Why a store made for `other` cannot be continued by this job, or None."""
        if other.get("weights_sha256") != self.weights_sha256:
            return f"was made with other tokenizer weights ({other.get('weights')})"
        if other.get("data") != self.data:
            return f"was made from another dataset config ({json.dumps(other.get('data'), sort_keys=True)})"
        if other.get("latent_dtype") != self.latent_dtype:
            return f"stores latents as {other.get('latent_dtype')}"
        if other.get("num_tokens") != self.num_tokens:
            return f"was made with another --num-tokens ({other.get('num_tokens')})"
        return None

    def count(self, index: int) -> int | None:
        """The token count of dataset sample `index`: fixed, or drawn from [lo, hi] by a
        generator seeded with the index alone, so a resumed or re-split run draws the same."""
        if self.num_tokens is None:
            return None
        lo, hi = self.num_tokens
        return lo if lo == hi else int(np.random.default_rng(index).integers(lo, hi + 1))


def data_config(ckpt: Checkpoint, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """The dataset config of the checkpoint's run, with `data.KEY=VALUE` overrides; the split
    is "all" unless an override names one."""
    from tokcore import config
    from tokcore.registry.params import params_of

    for item in overrides:
        if not item.split("=", 1)[0].strip().startswith("data."):
            raise ConfigError(f"'{item}': tokenize takes dataset overrides only (data.KEY=VALUE)",
                              file=config.COMMAND_LINE)
    spec = ckpt.spec(overrides)
    if spec.data is None:
        raise ConfigError("missing 'data'; give the dataset on the command line (data.name=... data.path=...)",
                          file=spec.file)
    data = spec.data.config()
    if not any(o.split("=", 1)[0].strip() == "data.split" for o in overrides):
        if "split" in {p.name for p in params_of(spec.data.cls())[0]}:
            data["split"] = "all"
    return data


def make_job(checkpoint: str | Path, overrides: Sequence[str] = (), *, latent_dtype: str = "float32",
             data: dict[str, Any] | None = None, num_tokens: int | Sequence[int] | None = None) -> Job:
    ckpt = Checkpoint(Path(checkpoint).resolve())
    w = ckpt.weights()
    if latent_dtype not in ("float32", "float16"):
        raise ConfigError(f"latent dtype '{latent_dtype}' is not supported; use float32 or float16")
    return Job(str(ckpt.path), w.name, sha256_file(w), data if data is not None else data_config(ckpt, overrides),
               latent_dtype, token_count_range(ckpt, num_tokens))


def token_count_range(ckpt: Checkpoint, num_tokens: int | Sequence[int] | None) -> list[int] | None:
    """`--num-tokens` (K, or [LO, HI]) as [lo, hi], checked against the checkpoint's tokenizer."""
    if num_tokens is None:
        return None
    lo, hi = (num_tokens, num_tokens) if isinstance(num_tokens, int) else tuple(num_tokens)
    allowed = ckpt.meta().get("num_tokens")
    if allowed is None:
        raise ConfigError("this tokenizer's token count is fixed by its encoder; --num-tokens is for a "
                          "variable-length one (such as titok)", key="--num-tokens")
    if not allowed["min"] <= lo <= hi <= allowed["max"]:
        raise ConfigError(f"{lo}:{hi} is outside this tokenizer's range {allowed['min']}:{allowed['max']}",
                          key="--num-tokens")
    return [int(lo), int(hi)]


def check_job(out: Path, job: Job) -> None:
    """TokcoreError unless `out` is free, or a token store that `job` may continue."""
    recorded = out / JOB
    if recorded.is_file():
        why = job.matches(json.loads(recorded.read_text(encoding="utf-8")))
        if why:
            raise TokcoreError(f"{out} holds a token store that {why}; choose another --output or delete it")
    elif out.exists() and any(not p.name.startswith(".") and p.name != SHARDS for p in out.iterdir()):
        raise TokcoreError(f"{out} exists and is not a token store; choose another --output")
