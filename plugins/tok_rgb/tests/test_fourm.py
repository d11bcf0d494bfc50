"""4M: `tokcore import 4m` of a Hub folder made by 4M's own code (fixtures/fourm, see its
make_fourm_fixture.py) gives the reference's tokens and reconstruction, with 4M's input
normalization recorded in the run; unsupported tokenizers and damaged files are one line."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import tokcore
from tokcore.cli import main

FIXTURE = Path(__file__).parent / "fixtures" / "fourm"
FOLDER = FIXTURE / "VQVAE-rgb-tiny"
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


@pytest.fixture(scope="module")
def reference():
    return load_file(str(FIXTURE / "reference.safetensors"))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("fourm") / "run"
    assert main(["import", "4m", str(FOLDER), "--output", str(out), "num_heads=2"]) == 0
    return out


def test_imported_run_gives_the_reference_tokens_and_reconstruction(run, reference, capsys):
    tok = tokcore.load_tokenizer(run)
    assert tok.codebook_size == 64 and tok.info()["token_grid"] == [4, 4]
    # 4M's ImageNet standardization is the run's: 0-255 pixels in, the reference's input inside
    assert torch.allclose(tok.prepare(reference["images"]), reference["input"], atol=1e-6)
    tokens = tok.encode(reference["images"])
    assert torch.equal(tokens.indices, reference["indices"])
    expected = ((reference["recon"] * STD + MEAN) * 255).clamp(0, 255)
    diff = (tok.decode(tokens) - expected).abs().max().item()
    with capsys.disabled():
        print(f"\n4m ViT VQ-VAE fixture: indices equal ({tokens.indices.numel()}), reconstruction max |diff| "
              f"{diff:.2e} (0-255 scale)")
    assert diff < 1e-2


def _copy(tmp_path: Path, **config) -> Path:
    folder = tmp_path / "tokenizer"
    shutil.copytree(FOLDER, folder)
    data = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**data, **config}))
    return folder


def test_undo_std_records_the_minus1_1_input(tmp_path):
    folder = _copy(tmp_path, undo_std=True)
    assert main(["import", "4m", str(folder), "--output", str(tmp_path / "run"), "num_heads=2"]) == 0
    assert tokcore.load_tokenizer(tmp_path / "run").info()["modality"]["mean"] == 127.5


def _error(capsys, *args: str) -> str:
    assert main(["import", "4m", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    return err


def test_unsupported_or_damaged_tokenizers_are_one_line(tmp_path, capsys):
    folder = _copy(tmp_path, n_labels=133)
    assert f"{folder / 'config.json'}: n_labels 133 is not supported" in _error(capsys, str(folder), "--output",
                                                                                  str(tmp_path / "a"), "num_heads=2")
    folder = _copy(tmp_path / "b", enc_type="vit_t_enc")
    assert "enc_type 'vit_t_enc' is not one of 4M's (vit_s, vit_b, vit_l); pass num_heads=" in _error(
        capsys, str(folder), "--output", str(tmp_path / "b" / "run"))
    folder = _copy(tmp_path / "c")
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    err = _error(capsys, str(folder), "--output", str(tmp_path / "c" / "run"), "num_heads=2")
    assert f"{folder / 'model.safetensors'}: not a readable safetensors file" in err
    assert not (tmp_path / "c" / "run").exists()
