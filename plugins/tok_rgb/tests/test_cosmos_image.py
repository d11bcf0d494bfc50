"""Cosmos image tokenizers: `tokcore import cosmos` of a DI archive made by NVIDIA's code
(fixtures/cosmos, see its make_cosmos_fixture.py) gives the reference's tokens and
reconstructions; 2-D Haar patching against a direct computation; the variant's checks."""

import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from tok_rgb.cosmos.haar import haar_patch_image, haar_unpatch_image

import tokcore
from tokcore.cli import main
from tokcore.config import load

FIXTURE = Path(__file__).parent / "fixtures" / "cosmos"
ARCHIVE = FIXTURE / "Cosmos-Tokenizer-DI8x8"


@pytest.fixture(scope="module")
def reference():
    return load_file(str(FIXTURE / "reference_image.safetensors"))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cosmos_image") / "run"
    assert main(["import", "cosmos", str(ARCHIVE), "--output", str(out), "input_size=32"]) == 0
    return out


def test_imported_image_tokenizer_gives_the_reference_tokens_and_reconstruction(run, reference, capsys):
    tok = tokcore.load_tokenizer(run)
    info = tok.info()
    assert info["components"] == {"encoder": "cosmos_image", "quantizer": "cosmos_fsq", "decoder": "cosmos_image"}
    assert tok.codebook_size == 64000 and info["token_grid"] == [4, 4]
    assert info["modality"] == {"name": "rgb", "mean": 127.5, "std": 127.5, "value_range": [0, 255]}
    tokens = tok.encode(reference["images"])
    assert torch.equal(tokens.indices, reference["indices"])
    assert reference["indices"].unique().numel() > 16  # the fixture uses many codes, not one
    recon = tok.decode(tokens)
    diff = (recon - ((reference["recon"] + 1) * 127.5).clamp(0, 255)).abs().max().item()
    with capsys.disabled():
        print(f"\ncosmos DI8x8 fixture: indices equal ({tokens.indices.numel()}), reconstruction max |diff| "
              f"{diff:.2e} (0-255 scale)")
    assert recon.shape == reference["images"].shape and diff < 1e-2


def test_attention_sits_where_each_part_of_the_archive_has_it(run):
    # Cosmos counts attention sizes differently in encoder and decoder; the fixture has it at
    # encoder levels 1 and 2 and decoder levels 0 and 1, which the import must reproduce
    tok = tokcore.load_tokenizer(run)
    assert [len(stage.attn) for stage in tok.encoder.down] == [0, 1, 1]
    assert [len(stage.attn) for stage in tok.decoder.up] == [2, 2, 0]
    assert [hasattr(stage, "downsample") for stage in tok.encoder.down] == [True, False, False]
    assert [hasattr(stage, "upsample") for stage in tok.decoder.up] == [False, False, True]


def test_haar_image_patching_is_lossless_and_orders_the_bands_as_cosmos():
    x = torch.randn(2, 3, 16, 8)
    for p in (1, 2, 4):
        y = haar_patch_image(x, p)
        assert y.shape == (2, 3 * p * p, 16 // p, 8 // p)
        assert torch.allclose(haar_unpatch_image(y, p), x, atol=1e-5)
    # one level, directly: the bands are LL, LH, HL, HH with the width's band first, each
    # rescaled to a mean over the 2x2 block
    a, b, c, d = x[:, :, 0::2, 0::2], x[:, :, 0::2, 1::2], x[:, :, 1::2, 0::2], x[:, :, 1::2, 1::2]
    expected = torch.cat([a + b + c + d, a + b - c - d, a - b + c - d, a - b - c + d], dim=1) / 4
    assert torch.allclose(haar_patch_image(x, 2), expected, atol=1e-6)
    assert torch.allclose(haar_patch_image(x, 2)[:, :3], F.avg_pool2d(x, 2), atol=1e-6)


def test_the_variant_comes_from_the_folder_name_and_must_fit_the_archive(tmp_path, capsys):
    folder = tmp_path / "weights"
    shutil.copytree(ARCHIVE, folder)
    code = main(["import", "cosmos", str(folder), "--output", str(tmp_path / "run")])
    assert code == 2 and "pass variant= one of DV4x8x8, DV8x8x8, DV8x16x16, DI8x8, DI16x16" in capsys.readouterr().err
    assert main(["import", "cosmos", str(folder), "--output", str(tmp_path / "run"), "variant=DI8x8"]) == 0
    assert tokcore.load_tokenizer(tmp_path / "run").info()["token_grid"] == [32, 32]  # input_size 256 by default
    for args, message in (
            (["variant=DV4x8x8"], ("holds a Cosmos image tokenizer, but the variant is DV4x8x8; pass variant= one "
                                   "of DI8x8, DI16x16")),
            (["variant=DI16x16"], ("the archive compresses 8x8 (DI8x8), but the variant says 16x16; "
                                   "pass variant=DI8x8"))):
        code = main(["import", "cosmos", str(folder), "--output", str(tmp_path / "bad"), *args])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1 and message in err
        assert not (tmp_path / "bad" / "checkpoints").exists()
    video = FIXTURE / "Cosmos-Tokenizer-DV4x8x8"
    code = main(["import", "cosmos", str(video), "--output", str(tmp_path / "bad"), "variant=DI8x8"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "holds a Cosmos video tokenizer, but the variant is DI8x8; pass variant= one of DV4x8x8" in err


def test_image_size_not_a_multiple_of_the_compression_is_one_line(run):
    tok = tokcore.load_tokenizer(run)
    with pytest.raises(ValueError, match="multiples of the spatial compression 8, got 36x32"):
        tok.encode(torch.zeros(1, 3, 36, 32, dtype=torch.uint8))


@pytest.mark.parametrize("name, grid, downsamplings", [("di8x8", [32, 32], 1), ("di16x16", [16, 16], 2)])
def test_di_configs_build_the_paper_size_networks(name, grid, downsamplings):
    cfg = load(f"tok-rgb:{name}").data
    with torch.device("meta"):  # full size, no memory
        model = tokcore.build_tokenizer(cfg["model"], cfg["modality"], (3, 256, 256))
    info = model.info()
    assert info["components"]["encoder"] == "cosmos_image" and info["codebook_size"] == 64000
    assert info["token_grid"] == grid
    assert sum(hasattr(stage, "downsample") for stage in model.encoder.down) == downsamplings
    assert sum(hasattr(stage, "upsample") for stage in model.decoder.up) == downsamplings
    assert model.encoder.conv_in.weight.shape == (128, 3 * 4 * 4, 3, 3)
