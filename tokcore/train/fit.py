"""`tokcore train` with a FitTrainer: one fit on the main process, saved as an ordinary checkpoint.

A fit has no gradient steps, optimizers or data-parallel ranks: the main process builds the
data and the model, calls `trainer.fit(model, train, val)`, logs what it returns to
metrics.jsonl, writes held-out inputs beside their round trips to `samples/`, and saves
`checkpoints/step-1` (a fit counts as one step) with the same writer as the gradient loop, so `load_tokenizer`, `tokcore tokenize` and `tokcore decode`
read it like any other checkpoint. Other ranks (under torchrun) only wait. Resuming a run
that already holds its checkpoint fits nothing again and returns the recorded figures.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from tokcore import registry
from tokcore.config import dump
from tokcore.run import checkpoint as ckpt
from tokcore.runtime.distributed import Context, barrier
from tokcore.train.log import MetricsLog
from tokcore.train.samples import first_samples, samples_path, write_samples
from tokcore.train.loop import (DEFAULT_TRAINER, build_data, build_model, prepare_run_dir, seed_everything,
                                 tokenizer_meta)
from tokcore.runtime.state import load_state

FIT_STEP = 1


def sample_shape(x: Any) -> tuple[int, ...]:
    """The shape of one raw sample: an array's shape, () for anything else (a string)."""
    return tuple(x.shape) if isinstance(x, torch.Tensor) or hasattr(x, "shape") else ()


def fit_run(config: dict[str, Any], run_dir: Path, resume: bool, ctx: Context) -> dict[str, float]:
    latest = prepare_run_dir(run_dir, config, resume, ctx)
    if latest is not None:  # the fit is done; nothing to continue
        return load_state(str(latest / "state.json"), str(latest / "state.safetensors"))["metrics"]
    metrics: dict[str, float] = {}
    if ctx.is_main:
        seed_everything(int(config.get("seed", 0)))
        train_set, val_set = build_data(config, "train"), build_data(config, "val")
        model = build_model(config, sample_shape(train_set[0]["input"]))
        trainer = registry.build("trainer", config.get("trainer", DEFAULT_TRAINER))
        log = MetricsLog(run_dir, FIT_STEP, 0, True)
        try:
            start = time.perf_counter()
            metrics = {**trainer.fit(model, train_set, val_set), "fit_seconds": time.perf_counter() - start}
            log.write(FIT_STEP, metrics)
            log.message("fit: " + ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()))
        finally:
            log.close()
        write_samples(model, first_samples(model, val_set), samples_path(run_dir, FIT_STEP))
        state = {"step": FIT_STEP, "best": {"value": None, "step": None}, "metrics": metrics}
        ckpt.save_checkpoint(run_dir, FIT_STEP, Context(device=ctx.device), model=model.eval(), ema=None,
                             trainer=trainer, state=state, tokenizer_meta=tokenizer_meta(model, config),
                             config_text=dump(config))
    barrier(ctx)
    return metrics
