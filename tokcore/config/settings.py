"""The `train:` section of a config: everything the shared loop owns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class TrainSettings:
    """Settings of the shared training loop (the `train:` section of a config).

    Args:
        steps: optimizer steps to run.
        batch_size: samples per process per micro-batch.
        grad_accum: micro-batches per optimizer step; the global batch is
            batch_size * grad_accum * number of processes.
        lr: peak learning rate.
        min_lr: learning rate at the end of the cosine schedule.
        warmup_steps: linear warmup from 0 to lr.
        schedule: "cosine" (after warmup, down to min_lr) or "constant".
        weight_decay: AdamW weight decay; never applied to norms, biases, embeddings or codebooks.
        betas: AdamW betas.
        clip_grad: max global gradient norm, or None for no clipping.
        precision: "fp32", "bf16" (autocast) or "fp16" (autocast with a gradient scaler).
        ema_decay: decay of an exponential moving average of the weights, evaluated beside
            the raw weights and used by load_tokenizer; None for no EMA.
        log_every: steps between metric lines in metrics.jsonl.
        eval_every: steps between evaluations on the val split; 0 evaluates only at the end.
        eval_batches: val batches per evaluation (per process); 0 means the whole split.
        save_every: steps between checkpoints; 0 saves only at the end.
        keep_last: checkpoints to keep (the newest ones), besides the best.
        keep_best: a metric ("val/loss", ...) whose lowest value's checkpoint is always kept.
        samples_every: steps between reconstruction pictures (0: only at the end).
        num_workers: DataLoader worker processes per training process.
        device: "auto" (CUDA when present), "cpu" or "cuda".
        init_from: a checkpoint or run directory whose model weights start this run
            (staged training, 4M's full_ckpt).
        freeze: parts of the model to keep fixed: any of "encoder", "quantizer", "decoder".
        multires: [min, max, step] side lengths: each batch is resized to a random size from
            this range (image and video modalities), or None.
    """

    steps: int = 1000
    batch_size: int = 16
    grad_accum: int = 1
    lr: float = 1e-3
    min_lr: float = 0.0
    warmup_steps: int = 0
    schedule: Literal["cosine", "constant"] = "cosine"
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.99])
    clip_grad: float | None = 1.0
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    ema_decay: float | None = None
    log_every: int = 10
    eval_every: int = 0
    eval_batches: int = 4
    save_every: int = 0
    keep_last: int = 2
    keep_best: str | None = None
    samples_every: int = 0
    num_workers: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    init_from: str | None = None
    freeze: list[Literal["encoder", "quantizer", "decoder"]] = field(default_factory=list)
    multires: list[int] | None = None
