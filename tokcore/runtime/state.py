"""Training state to disk without pickle: nested dicts/lists split into JSON and tensors.

`split_state` replaces every tensor in a nested structure by `{"__tensor__": key}` and
collects the tensors in a flat dict for safetensors; `join_state` puts them back. Tuples
become `{"__tuple__": [...]}` so that states which must be tuples (Python's RNG) come back as
tuples. Everything else must be JSON: that is the point (no pickle, readable state).
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

from tokcore.runtime.io import atomic_write_bytes, atomic_write_json


def split_state(obj: Any, prefix: str = "s") -> tuple[Any, dict[str, torch.Tensor]]:
    tensors: dict[str, torch.Tensor] = {}

    def walk(x: Any, key: str) -> Any:
        if isinstance(x, torch.Tensor):
            tensors[key] = x.detach().cpu().contiguous()
            return {"__tensor__": key}
        if isinstance(x, np.ndarray):
            tensors[key] = torch.from_numpy(np.ascontiguousarray(x))
            return {"__ndarray__": key}
        if isinstance(x, dict):
            return {"__dict__": [[walk(k, f"{key}.k{i}"), walk(v, f"{key}.{i}")] for i, (k, v) in enumerate(x.items())]}
        if isinstance(x, tuple):
            return {"__tuple__": [walk(v, f"{key}.{i}") for i, v in enumerate(x)]}
        if isinstance(x, list):
            return [walk(v, f"{key}.{i}") for i, v in enumerate(x)]
        if isinstance(x, (np.integer, np.floating)):
            return x.item()
        if x is None or isinstance(x, (bool, int, float, str)):
            return x
        raise TypeError(f"cannot store {type(x).__name__} at {key} in training state")

    return walk(obj, prefix), tensors


def join_state(tree: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(tree, list):
        return [join_state(v, tensors) for v in tree]
    if isinstance(tree, dict):
        if "__tensor__" in tree:
            return tensors[tree["__tensor__"]]
        if "__ndarray__" in tree:
            return tensors[tree["__ndarray__"]].numpy()
        if "__tuple__" in tree:
            return tuple(join_state(v, tensors) for v in tree["__tuple__"])
        if "__dict__" in tree:
            return {join_state(k, tensors): join_state(v, tensors) for k, v in tree["__dict__"]}
    return tree


def save_state(obj: Any, json_path: str, tensors_path: str) -> None:
    from safetensors.torch import save

    tree, tensors = split_state(obj)
    atomic_write_bytes(tensors_path, save(tensors) if tensors else save({"__empty__": torch.zeros(0)}))
    atomic_write_json(json_path, tree)


def load_state(json_path: str, tensors_path: str) -> Any:
    import json

    from safetensors.torch import load_file

    with open(json_path, encoding="utf-8") as f:
        tree = json.load(f)
    return join_state(tree, load_file(tensors_path))


def rng_state() -> dict[str, Any]:
    """Every random generator a training step may draw from, on this process."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
