"""Checkpoint directories of a run: written atomically, read without pickle.

    <run>/checkpoints/step-N/
        model.safetensors            raw weights of the tokenizer
        model_ema.safetensors        EMA weights (when train.ema_decay is set)
        trainer.safetensors          the trainer's own weights (a discriminator, ...)
        state.json + state.safetensors   optimizers, grad scaler, EMA, loop position
        rng-rank<R>.json + .safetensors  every random generator of rank R
        tokenizer.json               what load_tokenizer needs: components, modality and
                                     normalization, input spec, token grid, plugin versions
        config.yaml                  the resolved config of the run
    <run>/checkpoints/latest         the name of the newest complete checkpoint

A checkpoint is assembled in a temporary directory and renamed into place, so a run killed
while saving leaves the previous checkpoints intact and never a half-written one.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any, Sequence

from safetensors.torch import load_file, save
from torch import nn

from tokcore.errors import TokcoreError
from tokcore.run import meta
from tokcore.runtime.distributed import Context, barrier
from tokcore.runtime.io import atomic_write_bytes, atomic_write_text
from tokcore.runtime.state import load_state, rng_state, save_state

_STEP = re.compile(r"^step-(\d+)$")


def checkpoints_dir(run: Path) -> Path:
    return Path(run) / "checkpoints"


def list_checkpoints(run: Path) -> list[tuple[int, Path]]:
    folder = checkpoints_dir(run)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if p.is_dir() and (m := _STEP.match(p.name))]
    return sorted(found)


def latest_checkpoint(run: Path) -> Path | None:
    marker = checkpoints_dir(run) / "latest"
    if marker.is_file():
        path = checkpoints_dir(run) / marker.read_text().strip()
        if path.is_dir():
            return path
    found = list_checkpoints(run)
    return found[-1][1] if found else None


# What a resumable checkpoint holds besides the RNG states (model_ema.safetensors only when
# the run keeps an EMA, which its config.yaml says).
RESUMABLE = ("model.safetensors", "trainer.safetensors", "state.json", "state.safetensors", meta.FILE, "config.yaml")


def incomplete(ckpt: Path) -> str:
    """What is missing or unreadable in a checkpoint directory ("" when it is whole): files
    deleted or truncated after it was written (a full disk, a copy cut short)."""
    from safetensors import safe_open

    wanted = list(RESUMABLE) + (["model_ema.safetensors"] if _keeps_ema(ckpt) else [])
    for name in wanted:
        file = ckpt / name
        if not file.is_file():
            return f"{name} is missing"
        if file.suffix == ".safetensors":
            try:
                with safe_open(str(file), "pt"):
                    pass
            except Exception as err:  # a truncated or garbled header
                return f"{name} is unreadable ({err})"
    return ""


def latest_complete_checkpoint(run: Path) -> tuple[Path | None, list[str]]:
    """The newest checkpoint that is whole, and a line for each newer one that is not."""
    skipped = []
    for _, path in reversed(list_checkpoints(run)):
        why = incomplete(path)
        if not why:
            return path, skipped
        skipped.append(f"{path}: {why}; skipped")
    return None, skipped


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint directory from a run directory (its latest) or a checkpoint directory."""
    p = Path(path)
    if (p / meta.FILE).is_file():
        return p
    if checkpoints_dir(p).is_dir():
        latest = latest_checkpoint(p)
        if latest is not None:
            return latest
        raise TokcoreError(f"{p}: the run has no complete checkpoint yet")
    raise TokcoreError(f"{p}: not a run directory (with checkpoints/) or a checkpoint directory "
                       "(with tokenizer.json)")


class Checkpoint:
    """One checkpoint directory, read: what every consumer of a run (load_tokenizer,
    tokenize, decode, init_from, reports) asks instead of opening its files itself.

    `Checkpoint(path)` takes a run directory (its latest checkpoint) or a checkpoint directory.
    """

    def __init__(self, path: str | Path):
        self.path = resolve_checkpoint(path)

    def __repr__(self) -> str:
        return f"Checkpoint({str(self.path)!r})"

    @property
    def step(self) -> int:
        m = _STEP.match(self.path.name)
        return int(m.group(1)) if m else 0

    def meta(self) -> dict[str, Any]:
        """tokenizer.json, upgraded to the current format."""
        return meta.read(self.path)

    def keeps_ema(self) -> bool:
        """Whether the run kept EMA weights (train.ema_decay in its config.yaml)."""
        return _keeps_ema(self.path)

    def weights(self, ema: bool = True) -> Path:
        """The tokenizer's weights: the EMA weights when the run kept them (unless `ema` is
        False), else the raw ones. The one place this rule is written. A run that kept an
        EMA but whose checkpoint lacks the file is an error, not a silent switch to the raw
        weights (its tokens would not be the ones the run's evaluation measured)."""
        averaged = self.path / "model_ema.safetensors"
        if ema and self.keeps_ema():
            if not averaged.is_file():
                raise TokcoreError(f"{averaged}: missing, though the run kept EMA weights (train.ema_decay); "
                                   "the checkpoint is incomplete: use another checkpoint of the run")
            return averaged
        return self.path / "model.safetensors"

    def spec(self, overrides: Sequence[str] = ()) -> Any:
        """The run's resolved config (its config.yaml) as a RunSpec, with `overrides`; its
        component names are resolved through the providers the run recorded (`meta.read`)."""
        from tokcore.config import COMMAND_LINE
        from tokcore.config.spec import RunSpec

        path = self.path / "config.yaml"
        if not path.is_file():
            raise TokcoreError(f"{self.path}: the checkpoint has no config.yaml")
        recorded = self.meta()

        def pin(cfg: Any) -> None:  # names given on the command line are the user's choice, not pinned
            meta.resolve_config(cfg.data, recorded, lambda key: cfg.where((*key.split("."), "name")) == COMMAND_LINE)

        return RunSpec.load(path, overrides, adjust=pin)


def _keeps_ema(ckpt: Path) -> bool:
    import yaml

    config = ckpt / "config.yaml"
    if not config.is_file():
        return (ckpt / "model_ema.safetensors").is_file()
    train = (yaml.safe_load(config.read_text(encoding="utf-8")) or {}).get("train") or {}
    return bool(train.get("ema_decay"))


def weights_bytes(module: nn.Module) -> bytes:
    tensors, seen = {}, set()
    for k, v in module.state_dict().items():
        v = v.detach().cpu()
        ptr = (v.untyped_storage().data_ptr(), v.storage_offset()) if v.numel() else None
        tensors[k] = v.clone() if ptr in seen else v.contiguous()  # safetensors refuses shared storage
        seen.add(ptr)
    return save(tensors)


def load_weights(module: nn.Module, file: Path, *, strict: bool = True) -> tuple[list[str], list[str]]:
    """Load a safetensors file; with strict=False only keys present with the same shape.

    Returns (loaded keys, skipped keys). A missing or damaged file, or one made for another
    model, is a TokcoreError naming the file."""
    try:
        state = load_file(str(file))
    except FileNotFoundError:
        raise TokcoreError(f"{file}: missing; the checkpoint is incomplete (use another checkpoint of the run)") from None
    except Exception as err:  # safetensors' own errors name neither the file nor the fix
        raise TokcoreError(f"{file}: not a readable safetensors file ({err}); the checkpoint is damaged "
                           "(use another checkpoint of the run)") from None
    if strict:
        own = module.state_dict()
        missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
        # extra state (a fitted vocabulary, a uint8 blob) has the shape of its content
        reshaped = sorted(k for k in set(own) & set(state)
                          if own[k].shape != state[k].shape and not k.endswith("_extra_state"))
        if missing or unexpected or reshaped:
            what = [f"{len(v)} {n} ({v[0]}{', ...' if len(v) > 1 else ''})" for n, v in
                    (("missing", missing), ("unexpected", unexpected), ("of another shape", reshaped)) if v]
            raise TokcoreError(f"{file}: made for another model: tensors {'; '.join(what)}; load it into "
                               "the model of the config it was saved with (its config.yaml)")
        module.load_state_dict(state, strict=True)
        return sorted(state), []
    own = module.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    module.load_state_dict(usable, strict=False)
    return sorted(usable), sorted(set(own) - set(usable))


def save_checkpoint(run: Path, step: int, ctx: Context, *, model: nn.Module, ema: nn.Module | None,
                    trainer: nn.Module, state: dict[str, Any], tokenizer_meta: dict[str, Any],
                    config_text: str) -> Path | None:
    """Every rank calls this; rank 0 assembles the directory. Returns its path on rank 0."""
    final = checkpoints_dir(run) / f"step-{step}"
    tmp = checkpoints_dir(run) / f".step-{step}.tmp"
    if ctx.is_main:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    barrier(ctx)
    save_state(rng_state(), str(tmp / f"rng-rank{ctx.rank}.json"), str(tmp / f"rng-rank{ctx.rank}.safetensors"))
    barrier(ctx)
    if ctx.is_main:
        import json

        atomic_write_bytes(tmp / "model.safetensors", weights_bytes(model))
        if ema is not None:
            atomic_write_bytes(tmp / "model_ema.safetensors", weights_bytes(ema))
        atomic_write_bytes(tmp / "trainer.safetensors", weights_bytes(trainer))
        save_state(state, str(tmp / "state.json"), str(tmp / "state.safetensors"))
        atomic_write_text(tmp / meta.FILE, json.dumps({**tokenizer_meta, "step": step}, indent=2) + "\n")
        atomic_write_text(tmp / "config.yaml", config_text)
        if final.exists():  # a re-save of the same step (resumed run that ended right here)
            shutil.rmtree(final)
        tmp.rename(final)
        atomic_write_text(checkpoints_dir(run) / "latest", final.name + "\n")
    barrier(ctx)
    return final if ctx.is_main else None


def load_training_state(ckpt: Path, rank: int) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(loop/optimizer state, this rank's RNG state or None if it was saved by fewer ranks)."""
    state = load_state(str(ckpt / "state.json"), str(ckpt / "state.safetensors"))
    rng_json = ckpt / f"rng-rank{rank}.json"
    rng = load_state(str(rng_json), str(ckpt / f"rng-rank{rank}.safetensors")) if rng_json.is_file() else None
    return state, rng


def prune(run: Path, keep_last: int, protect: set[int]) -> None:
    """Delete all but the newest `keep_last` checkpoints and the protected (best) steps."""
    found = list_checkpoints(run)
    keep = {s for s, _ in found[-keep_last:]} if keep_last > 0 else set()
    for step, path in found:
        if step not in keep and step not in protect:
            shutil.rmtree(path, ignore_errors=True)

