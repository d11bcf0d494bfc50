"""Device resolution and autocast, written once in `tokcore.runtime.device`."""

import contextlib

import pytest
import torch

from tokcore.errors import ConfigError, TokcoreError
from tokcore.runtime.device import autocast, module_device, resolve_device


def test_auto_is_the_cpu_without_a_gpu_and_cuda_is_never_a_silent_cpu_run(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    for asked in ("cuda", "cuda:1"):
        with pytest.raises(ConfigError, match=f"^device: '{asked}' was asked for, but no CUDA device") as err:
            resolve_device(asked)
        assert err.value.key == "device"  # the caller locates it: train.device, --device


def test_auto_and_cuda_take_the_ranks_own_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto", local_rank=3) == torch.device("cuda", 1)
    assert resolve_device("cuda", local_rank=2) == torch.device("cuda", 0)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)


def test_autocast_contexts():
    cpu = torch.device("cpu")
    assert isinstance(autocast(cpu, "auto"), contextlib.nullcontext)
    assert isinstance(autocast(cpu, "fp32"), contextlib.nullcontext)
    with autocast(cpu, "bf16"):
        assert torch.mm(torch.ones(2, 2), torch.ones(2, 2)).dtype == torch.bfloat16
    with pytest.raises(TokcoreError, match="precision 'fp8' is unknown"):
        autocast(cpu, "fp8")


def test_module_device():
    assert module_device(torch.nn.Linear(2, 2)) == torch.device("cpu")
    assert module_device(torch.nn.Identity()) == torch.device("cpu")
