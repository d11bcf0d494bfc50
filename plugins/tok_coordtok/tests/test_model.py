"""CoordTok's encoder and decoder: plane shapes, masking of short clips, whole-clip decoding
in chunks, and the paper's model built at full size."""

from importlib import resources

import pytest
import torch
import yaml

from tokcore import registry
from tokcore.api import ConfigError, build_tokenizer

ENC = {"name": "coordtok", "frames": 8, "size": [16, 24], "patch_t": 2, "patch": 8, "width": 32, "patch_depth": 1,
       "depth": 2, "num_heads": 2, "plane_t": 6, "plane_h": 4, "plane_w": 2, "query_patch": 2, "query_patch_t": 3,
       "out_dim": 4}
DEC = {"name": "triplane", "frames": 8, "size": [16, 24], "patch_t": 2, "patch": 4, "plane_t": 6, "plane_h": 4,
       "plane_w": 2, "width": 32, "depth": 2, "num_heads": 2, "query_group": 10}


def test_encoder_makes_planes_of_their_own_non_square_shapes():
    torch.manual_seed(0)
    enc = registry.build("encoder", ENC)
    z = enc(torch.randn(2, 3, 8, 16, 24))
    assert enc.token_grid((3, 8, 16, 24)) == (4 * 2 + 6 * 2 + 6 * 4,)
    assert z.shape == (2, 44, 4)
    planes = enc.triplane.split(z)
    assert {k: tuple(v.shape[1:3]) for k, v in planes.items()} == {"hw": (4, 2), "tw": (6, 2), "th": (6, 4)}
    # each query token writes its own cells: a gradient on one cell of th reaches one query token's projection
    planes["th"][0, 4, 3].sum().backward()
    rows = enc.to_cells["th"].weight.grad.abs().sum(dim=1).reshape(3, 2, 4)  # (query rows, query cols, D)
    assert rows.count_nonzero() == 4  # cell (4, 3) of token (1, 1) in a 3x2 token's (row 1, col 1): 4 channels


def test_bad_plane_split_is_a_config_error_naming_the_key():
    with pytest.raises(ConfigError, match="query_patch"):
        registry.build("encoder", {**ENC, "plane_t": 5})


def test_a_short_clip_is_masked_whatever_its_padding_holds():
    torch.manual_seed(0)
    enc = registry.build("encoder", ENC).eval()
    clip = torch.randn(1, 3, 8, 16, 24)
    short = clip[:, :, :4]
    noisy = torch.cat([short, 100 * torch.randn(1, 3, 4, 16, 24)], dim=2)
    z_short = enc(short)  # 4 frames: padded to 8 and masked
    assert torch.allclose(z_short, enc(noisy, valid_frames=torch.tensor([4])), atol=1e-5)
    assert torch.allclose(z_short, enc(torch.cat([short, torch.zeros_like(short)], 2), torch.tensor([4])), atol=1e-5)
    assert not torch.allclose(z_short, enc(clip), atol=1e-3)  # the other 4 frames count when valid
    with pytest.raises(ValueError, match="T <= 8"):
        enc(torch.randn(1, 3, 9, 16, 24))


def test_whole_clip_decode_is_the_same_in_any_number_of_passes():
    torch.manual_seed(0)
    dec = registry.build("decoder", {**DEC, "in_dim": 4}).eval()
    z = torch.randn(2, 44, 4)
    one_pass = registry.build("decoder", {**DEC, "in_dim": 4, "groups_per_pass": 1000}).eval()
    one_pass.load_state_dict(dec.state_dict())
    with torch.no_grad():
        chunked, whole = dec(z), one_pass(z)
    assert chunked.shape == (2, 3, 8, 16, 24)
    assert torch.allclose(chunked, whole, atol=1e-5)
    # and it is the patch query of each group of 10 patches (4 x 4 x 6 = 96: the last group has 6)
    from tok_coordtok.patches import all_patches, to_patches

    index = all_patches(dec.grid)
    patches = to_patches(chunked, 2, 4).reshape(2, 96, -1)
    for start in (0, 50, 90):
        group = index[start:start + 10][None].expand(2, -1, -1)
        with torch.no_grad():
            assert torch.allclose(dec(z, patches=group), patches[:, start:start + 10], atol=1e-5)


def test_tokenizer_with_fsq_on_plane_cells_gives_indices_and_decodes_them():
    tok = build_tokenizer({"encoder": ENC, "quantizer": {"name": "fsq", "levels": [5, 5, 5, 5]}, "decoder": DEC})
    tokens = tok.encode(torch.randn(2, 3, 8, 16, 24))
    assert tokens.indices is not None and tokens.indices.shape == (2, 44)
    assert tok.decode(tokens).shape == (2, 3, 8, 16, 24)


def test_paper_ucf101_model_builds_at_full_size_on_the_meta_device(capsys):
    # the model section as shipped; the config itself `requires` tok-rgb (its video modality and
    # data), which this plugin's tests do not assume
    text = (resources.files("tok_coordtok") / "configs" / "ucf101.yaml").read_text(encoding="utf-8")
    cfg = yaml.safe_load(text)
    with torch.device("meta"):
        tok = build_tokenizer(cfg["model"])
    info = tok.info()
    assert info["token_grid"] == [1280] and info["latent_dim"] == 8
    params = info["parameters"]
    assert tok.decoder.grid == (128, 16, 16) and tok.encoder.grid == (16, 8, 8)
    with capsys.disabled():
        print(f"\nCoordTok UCF-101 (paper size): encoder {params['encoder']:,} + decoder {params['decoder']:,} "
              f"= {params['encoder'] + params['decoder']:,} parameters, {info['token_grid'][0]} tokens x 8 channels")
