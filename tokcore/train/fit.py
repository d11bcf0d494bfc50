"""`tokcore train` with a FitTrainer: one fit on the main process, saved as an ordinary checkpoint.

A fit has no gradient steps, optimizers or data-parallel ranks: the main process builds the
data and the model, calls `trainer.fit(model, train, val)`, logs what it returns to
metrics.jsonl, writes held-out inputs beside their round trips to `samples/`, and saves
`checkpoints/step-1` (a fit counts as one step) with the same writer as the gradient loop,
so `load_tokenizer`, `tokcore tokenize` and `tokcore decode` read it like any other
checkpoint. Other ranks (under torchrun) only wait. Resuming a run that already holds its
checkpoint fits nothing again and returns the recorded figures.
"""

from __future__ import annotations

import time
from pathlib import Path

from tokcore.config import dump
from tokcore.config.spec import RunSpec
from tokcore.run import checkpoint as ckpt
from tokcore.run import meta as tokenizer_meta
from tokcore.runtime.distributed import Context, barrier
from tokcore.runtime.state import load_state
from tokcore.train.build import build_parts, prepare_run_dir
from tokcore.train.log import MetricsLog, format_metrics
from tokcore.train.samples import first_samples, samples_path, write_samples

FIT_STEP = 1


def fit_run(spec: RunSpec, run_dir: Path, resume: bool, ctx: Context) -> dict[str, float]:
    latest = prepare_run_dir(run_dir, spec, resume, ctx)
    if latest is not None:  # the fit is done; nothing to continue
        return load_state(str(latest / "state.json"), str(latest / "state.safetensors"))["metrics"]
    metrics: dict[str, float] = {}
    if ctx.is_main:
        parts = build_parts(spec)
        model, trainer = parts.model, parts.trainer
        log = MetricsLog(run_dir, FIT_STEP, 0, True)
        try:
            start = time.perf_counter()
            metrics = {**trainer.fit(model, parts.train_set, parts.val_set), "fit_seconds": time.perf_counter() - start}
            log.write(FIT_STEP, metrics)
            log.message("fit: " + format_metrics(metrics))
        finally:
            log.close()
        write_samples(model, first_samples(model, parts.val_set), samples_path(run_dir, FIT_STEP))
        state = {"step": FIT_STEP, "best": {"value": None, "step": None}, "metrics": metrics}
        ckpt.save_checkpoint(run_dir, FIT_STEP, Context(device=ctx.device), model=model.eval(), ema=None,
                             trainer=trainer, state=state, tokenizer_meta=tokenizer_meta.describe(model, spec),
                             config_text=dump(spec.config))
    barrier(ctx)
    return metrics
