"""`tokcore train` with packed batches (train.max_tokens + train.views): each sample's size
and token count drawn per epoch, micro-batches filled to a token budget, TiTok run through
its forward_packed; the step sampler's guarantees end to end (N processes == one with
accumulation; resumption bit-exact), and the per-sample views themselves."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from tokcore.batch import PackedCollate
from tokcore.builtins.modalities import ArrayModality
from tokcore.cli import main
from tokcore.errors import ConfigError
from tokcore.train.packing import SizedViews, TokenBudgetSampler, ViewSizes, resize_crop

sys.path.insert(0, str(Path(__file__).parent))
from test_train import CRASH_HOOK, assert_same_weights, losses, tokcore_cmd, weights  # noqa: E402

ARCH = {"image_size": 24, "patch_size": 4, "width": 32, "depth": 1, "num_heads": 2, "max_tokens": 6}
VIEWS = {"height": [8, 24], "width": [8, 24], "max_aspect": 2.0}


def write_config(tmp: Path, **train) -> Path:
    data = tmp / "images.npy"
    yy, xx = np.meshgrid(np.linspace(-1, 1, 24), np.linspace(-1, 1, 24), indexing="ij")
    phases = np.random.default_rng(0).uniform(0, 6, size=(40, 3, 1, 1))
    np.save(data, np.sin(3 * xx + 2 * yy + phases).astype(np.float32))  # (40, 3, 24, 24) smooth images
    cfg = {
        "tokcore": 1,
        "seed": 5,
        "model": {
            "encoder": {"name": "titok", "in_channels": 3, "out_dim": 5, "min_tokens": 2, **ARCH},
            "quantizer": {"name": "fsq", "levels": [7, 7, 7, 5, 5]},
            "decoder": {"name": "titok", "out_channels": 3, **ARCH},
        },
        "data": {"name": "arrays", "path": str(data), "val_fraction": 0.0},
        "train": {"steps": 4, "max_tokens": 120, "views": VIEWS, "lr": 3e-3, "log_every": 1, **train},
    }
    path = tmp / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_views_draw_sizes_within_the_ranges_and_aspect_and_repeat_by_view_id():
    data = [{"input": torch.arange(3 * 24 * 24, dtype=torch.float32).reshape(3, 24, 24)}] * 10
    views = SizedViews(data, ViewSizes.from_config(VIEWS), (1, 4, 4), (2, 6), seed=1)
    seen = set()
    for view in range(60):
        (h, w), k, _ = views.view(view)
        assert 8 <= h <= 24 and 8 <= w <= 24 and h % 4 == 0 and w % 4 == 0 and max(h / w, w / h) <= 2
        assert 2 <= k <= 6
        sample = views[view]
        assert sample["input"].shape == (3, h, w) and sample["num_tokens"] == k
        seen.add((h, w, k))
    assert len(seen) > 20  # sizes and counts do vary
    again = SizedViews(data, ViewSizes.from_config(VIEWS), (1, 4, 4), (2, 6), seed=1)
    assert all(again.view(v) == views.view(v) for v in range(60))
    assert views.lengths(lambda size, k: size[0] * size[1] // 16 + k)(1)[3] == \
        (lambda s: s[0][0] * s[0][1] // 16 + s[1])(views.view(13))


def test_video_views_take_frames_at_the_drawn_stride():
    clip = torch.arange(20, dtype=torch.float32)[None, :, None, None].expand(3, 20, 16, 16).clone()
    sizes = ViewSizes.from_config({"height": [16, 16], "width": [16, 16], "frames": [4, 8], "frame_stride": [2, 2]})
    views = SizedViews([{"input": clip}], sizes, (2, 4, 4), (1, 3), seed=0, clip_frames=20)
    for view in range(10):
        (t, h, w), _, stride = views.view(view)
        frames = views[view]["input"][0, :, 0, 0]
        assert t % 2 == 0 and 4 <= t <= 8 and stride == 2 and len(frames) == t
        assert torch.equal(torch.diff(frames), torch.full((t - 1,), 2.0))


def test_resize_crop_keeps_the_centre_of_the_drawn_aspect():
    x = torch.zeros(1, 8, 16, dtype=torch.uint8)
    x[:, :, 4:12] = 200  # the centre square is bright, the sides dark
    out = resize_crop(x, (4, 4))
    assert out.dtype == torch.uint8 and out.shape == (1, 4, 4) and bool((out == 200).all())
    assert resize_crop(x, (8, 16)) is x


def test_view_errors():
    with pytest.raises(ConfigError, match="train.views.width"):
        ViewSizes.from_config({"height": [8, 8]})
    with pytest.raises(ConfigError, match=r"must be \[min, max\]"):
        ViewSizes.from_config({"height": [9, 8], "width": [8, 8]})
    with pytest.raises(ConfigError, match="no multiple of the model's patch 16"):
        ViewSizes.from_config({"height": [8, 12], "width": [8, 12]}).draw(random.Random(0), (1, 16, 16))


def test_packed_collate_keeps_sample_order_sizes_and_counts():
    samples = [{"index": 7, "key": "a", "input": torch.ones(3, 8, 12), "num_tokens": 2},
               {"index": 3, "key": "b", "input": torch.zeros(3, 16, 16), "num_tokens": 5},
               {"index": 9, "key": "c", "input": torch.full((3, 8, 12), 2.0), "num_tokens": 4}]
    batch = PackedCollate(ArrayModality())(samples)
    assert batch["keys"] == ["b", "a", "c"] and batch["num_tokens"].tolist() == [5, 2, 4]
    assert [tuple(x.shape) for x in batch["input"]] == [(3, 16, 16), (3, 8, 12), (3, 8, 12)]
    assert float(batch["input"][2].mean()) == 2.0


def test_packed_training_runs_titok_on_mixed_sizes(tmp_path, capsys):
    cfg = write_config(tmp_path)
    assert main(["train", "--config", str(cfg), "--output", str(tmp_path / "run")]) == 0
    assert len(losses(tmp_path / "run")) == 4 and all(np.isfinite(losses(tmp_path / "run")))
    for k in (2, 5):  # the trained run, evaluated at a chosen token count through tokenize -> store -> decode
        assert main(["eval", "--checkpoint", str(tmp_path / "run"), "--split", "train", "--num-tokens", str(k),
                     "--baselines", "none", "--quiet", "--output", str(tmp_path / f"eval{k}")]) == 0
        column = json.loads((tmp_path / f"eval{k}/metrics.json").read_text())["columns"]["tokenizer"]
        assert column["tokens_per_sample"] == k and column["samples"] == 40
    spec = yaml.safe_load(cfg.read_text())
    spec["train"].pop("views")
    cfg.write_text(yaml.safe_dump(spec))
    assert main(["train", "--config", str(cfg), "--output", str(tmp_path / "noviews")]) == 2
    assert "train.views: packed batches draw each sample's size" in capsys.readouterr().err


def test_packed_two_processes_match_one_process_with_twice_the_accumulation(tmp_path):
    cfg = write_config(tmp_path)
    two = tokcore_cmd("train", "--config", str(cfg), "--nproc", "2", "--output", str(tmp_path / "two"))
    assert two.returncode == 0, two.stderr
    one = tokcore_cmd("train", "--config", str(cfg), "train.grad_accum=2", "--output", str(tmp_path / "one"))
    assert one.returncode == 0, one.stderr
    a, b = losses(tmp_path / "two"), losses(tmp_path / "one")
    assert len(a) == len(b) == 4
    assert np.allclose(a, b, rtol=1e-5, atol=1e-7), (a, b)
    wa, wb = weights(tmp_path / "two", 4), weights(tmp_path / "one", 4)
    for k in wa:
        assert torch.allclose(wa[k], wb[k], rtol=1e-4, atol=1e-6), k


def test_packed_training_resumes_bit_exactly(tmp_path, tokcore_registry, monkeypatch):
    """Crashed after 4 of 6 steps (a checkpoint every 2) and resumed: the same weights as a run
    that never stopped, across epoch boundaries (each epoch draws new sizes and counts)."""
    (tmp_path / "tokcore_test_crash.py").write_text(CRASH_HOOK)
    monkeypatch.syspath_prepend(str(tmp_path))
    tokcore_registry.register_hooks("tokcore_test_crash")
    cfg = write_config(tmp_path, steps=6, save_every=2, keep_last=5, max_tokens=400)
    assert main(["train", "--config", str(cfg), "--output", str(tmp_path / "full")]) == 0
    monkeypatch.setenv("TOKCORE_TEST_CRASH_AT", "5")
    assert main(["train", "--config", str(cfg), "--output", str(tmp_path / "cut")]) == 1
    monkeypatch.delenv("TOKCORE_TEST_CRASH_AT")
    assert main(["train", "--config", str(cfg), "--output", str(tmp_path / "cut"), "--resume"]) == 0
    assert_same_weights(weights(tmp_path / "full", 6), weights(tmp_path / "cut", 6))
    assert losses(tmp_path / "full") == losses(tmp_path / "cut")
