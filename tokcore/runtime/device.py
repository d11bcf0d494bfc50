"""Which device a process computes on, and in which precision: written once for training,
tokenizing, decoding and the Tokenizer itself.

`"auto"` means the process's own GPU when there is one (its local rank modulo the GPUs of
the node, so torchrun/SLURM ranks spread over the node's devices), otherwise the CPU.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import nn

from tokcore.errors import ConfigError, TokcoreError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def resolve_device(device: str | torch.device = "auto", local_rank: int = 0) -> torch.device:
    """The torch device for "auto", "cpu", "cuda" (this rank's GPU) or an explicit
    "cuda:N"; asking for CUDA where there is none is a ConfigError with key `device` (never a
    silent CPU run), which the caller locates (`train.device`, `--device`)."""
    if isinstance(device, torch.device):
        return device
    if device not in ("auto", "cpu") and not torch.cuda.is_available():
        why = "no GPU is visible" if torch.backends.cuda.is_built() else f"torch {torch.__version__} has no CUDA support"
        raise ConfigError(f"'{device}' was asked for, but no CUDA device is available ({why}); use auto or cpu",
                          key="device")
    if device == "cpu" or (device == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if device in ("auto", "cuda"):
        return torch.device("cuda", local_rank % max(torch.cuda.device_count(), 1))
    return torch.device(device)


def autocast(device: torch.device, precision: str) -> Any:
    """An autocast context for "fp32", "bf16", "fp16" or "auto" (bf16 on a GPU that has it,
    fp32 otherwise). The context can be entered again for every step."""
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision not in PRECISIONS:
        raise TokcoreError(f"precision '{precision}' is unknown; use {', '.join(PRECISIONS)}")
    return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def module_device(module: nn.Module) -> torch.device:
    """Where a module's parameters (or, without any, its buffers) are; the CPU for neither."""
    for t in module.parameters():
        return t.device
    for t in module.buffers():
        return t.device
    return torch.device("cpu")
