from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Callable, Iterator

import pytest

from tokcore import registry


@pytest.fixture(autouse=True)
def one_thread(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Test models are tiny: intra-op threads only add overhead, and on a busy machine
    OpenMP's waiting threads can make a 2-second test take a minute. OMP_NUM_THREADS=1 is
    what runs started by a test (in this process or not) choose too."""
    import torch

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def fake_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """Install a distribution by writing its metadata (and modules) onto sys.path.

    fake_dist("tok-fake", {"tokcore.losses": {"l": "mod:Cls"}}, requires=["tokcore<0.1"],
              modules={"mod": "class Cls: ..."})
    Call `registry.scope(fresh=True)` afterwards to discover it.
    """
    root = tmp_path / "site"
    root.mkdir(exist_ok=True)
    monkeypatch.syspath_prepend(str(root))

    def make(name: str, entry_points: dict[str, dict[str, str]], *, version: str = "0.1.0",
             requires: tuple[str, ...] | list[str] = ("tokcore>=0.1,<0.2",), modules: dict[str, str] | None = None) -> Path:
        info = root / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        meta = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
        meta += [f"Requires-Dist: {r}" for r in requires]
        (info / "METADATA").write_text("\n".join(meta) + "\n")
        eps = "".join(f"[{g}]\n" + "".join(f"{k} = {v}\n" for k, v in e.items()) for g, e in entry_points.items())
        (info / "entry_points.txt").write_text(eps)
        for mod, src in (modules or {}).items():
            (root / f"{mod}.py").write_text(textwrap.dedent(src))
        return info

    return make


@pytest.fixture
def core_only() -> Iterator[registry.Registry]:
    """The registry as it would be with only tokcore installed."""
    plugins = [p for p in registry.discover() if p.dist == registry.CORE_DIST]
    with registry.scope() as reg:
        reg._plugins = plugins
        yield reg


@pytest.fixture
def walks_config(tmp_path: Path) -> Callable[..., Path]:
    """`walks_config(**train)`: a tiny conv1d + FSQ config on 24 random walks (16 x 2) written
    to tmp_path/cfg.yaml, with `train:` settings added; returns its path."""
    import numpy as np
    import yaml

    def make(**train) -> Path:
        np.save(tmp_path / "walks.npy", np.random.default_rng(0).normal(size=(24, 16, 2)).astype(np.float32))
        conv = {"base_channels": 8, "channel_mult": [1, 2], "num_res_blocks": 1, "mid_attention": False}
        cfg = {"tokcore": 1, "model": {"encoder": {"name": "conv1d", "in_channels": 2, "out_dim": 3, **conv},
                                       "quantizer": {"name": "fsq", "levels": [5, 5, 5]},
                                       "decoder": {"name": "conv1d", "in_dim": 3, "out_channels": 2, **conv}},
               "data": {"name": "arrays", "path": str(tmp_path / "walks.npy"), "val_fraction": 0.25},
               "train": {"steps": 2, "batch_size": 4, **train}}
        (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
        return tmp_path / "cfg.yaml"

    return make
