"""The registered backbones: contract, shapes at several sizes, round trips, errors, training."""

import pytest
import torch

from tokcore import registry
from tokcore.testing import contract_test

test_contract = contract_test(kinds=["encoder", "decoder"])

TINY_CONV = {"base_channels": 8, "channel_mult": [1, 2, 2], "num_res_blocks": 1}  # f = 4
TINY_VIT = {"image_size": 16, "patch_size": 4, "width": 32, "depth": 1, "num_heads": 2}
TINY_T1D = {"patch_size": 2, "width": 32, "depth": 1, "num_heads": 2, "max_len": 16}

# name -> (shared config, encoder-only config, decoder-only config, input sample shapes, expected grids)
PAIRS = {
    "conv2d": (TINY_CONV, {"in_channels": 3}, {"out_channels": 3},
               [(3, 16, 16), (3, 32, 16), (3, 8, 24)], [(4, 4), (8, 4), (2, 6)]),
    "conv1d": (TINY_CONV, {"in_channels": 9}, {"out_channels": 9},
               [(8, 9), (16, 9), (28, 9)], [(2,), (4,), (7,)]),
    "vit": (TINY_VIT, {"in_channels": 3}, {"out_channels": 3},
            [(3, 16, 16), (3, 32, 24), (3, 8, 12)], [(4, 4), (8, 6), (2, 3)]),
    "transformer1d": (TINY_T1D, {"in_channels": 2}, {"out_channels": 2},
                      [(2, 2), (16, 2), (30, 2)], [(1,), (8,), (15,)]),
}


def build_pair(name, dim=6):
    shared, enc_only, dec_only, _, _ = PAIRS[name]
    enc = registry.build("encoder", {"name": name, **shared, **enc_only, "out_dim": dim})
    dec = registry.build("decoder", {"name": name, **shared, **dec_only, "in_dim": dim})
    return enc, dec


@pytest.mark.parametrize("name", list(PAIRS))
def test_output_shapes_match_token_grid_and_round_trip_restores_the_shape(name):
    torch.manual_seed(0)
    enc, dec = build_pair(name)
    _, _, _, shapes, grids = PAIRS[name]
    for shape, grid in zip(shapes, grids):
        x = torch.randn(2, *shape)
        z = enc(x)
        assert tuple(enc.token_grid(shape)) == grid
        assert z.shape == (2, *grid, 6)
        assert dec(z).shape == x.shape


@pytest.mark.parametrize("name,bad_shape,message", [
    ("conv2d", (2, 3, 18, 16), r"conv2d encoder: H=18 is not divisible by downsample=4"),
    ("conv1d", (2, 10, 9), r"conv1d encoder: T=10 is not divisible by downsample=4"),
    ("vit", (2, 3, 16, 18), r"vit encoder: W=18 is not divisible by patch_size=4"),
    ("conv2d", (2, 1, 16, 16), r"conv2d encoder: input must have 3 channels on axis 1"),
    ("conv1d", (2, 9, 16), r"conv1d encoder: input must have 9 channels on axis 2 of \(B, T, C\)"),
    ("vit", (3, 16, 16), r"vit encoder: input must be \(B, C, H, W\), got shape \(3, 16, 16\)"),
])
def test_bad_inputs_fail_naming_the_sizes(name, bad_shape, message):
    enc, _ = build_pair(name)
    with pytest.raises(ValueError, match=message):
        enc(torch.randn(*bad_shape))


def test_transformer1d_rejects_length_not_divisible_by_patch():
    enc = registry.build("encoder", {"name": "transformer1d", **TINY_T1D, "patch_size": 4})
    with pytest.raises(ValueError, match=r"transformer1d encoder: T=30 is not divisible by patch_size=4"):
        enc(torch.randn(1, 30, 2))
    with pytest.raises(ValueError, match=r"T=30 is not divisible by patch_size=4"):
        enc.token_grid((30, 2))


def test_transformer1d_rejects_more_tokens_than_max_len():
    enc, dec = build_pair("transformer1d")
    with pytest.raises(ValueError, match=r"T=40 with patch_size=2 gives 20 tokens, more than max_len=16"):
        enc(torch.randn(1, 40, 2))
    with pytest.raises(ValueError, match=r"got 17 tokens, more than max_len=16"):
        dec(torch.randn(1, 17, 6))


def test_transformer1d_egom2p_shape_60_frames_to_30_tokens():
    enc = registry.build("encoder", {"name": "transformer1d", "width": 32, "depth": 1, "num_heads": 2})
    assert enc(torch.randn(1, 60, 2)).shape == (1, 30, enc.out_dim)


def test_transformer1d_mask_keeps_padding_out_of_valid_tokens():
    enc, _ = build_pair("transformer1d")
    enc.eval()
    x = torch.randn(1, 16, 2)
    padded = x.clone()
    padded[:, 12:] = 100.0  # garbage in the last two tokens (frames 12-15)
    mask = torch.tensor([[True] * 6 + [False] * 2])
    with torch.no_grad():
        assert torch.allclose(enc(x, mask)[:, :6], enc(padded, mask)[:, :6], atol=1e-5)


@pytest.mark.parametrize("pos_embed", ["learned", "sincos"])
def test_vit_runs_at_resolutions_other_than_its_own(pos_embed):
    enc = registry.build("encoder", {"name": "vit", **TINY_VIT, "pos_embed": pos_embed})
    x = torch.randn(1, 3, 40, 24)  # built for 16x16
    z = enc(x)
    assert z.shape == (1, 10, 6, enc.out_dim) and enc.token_grid((3, 40, 24)) == (10, 6)
    assert torch.isfinite(z).all()
    dec = registry.build("decoder", {"name": "vit", **TINY_VIT, "pos_embed": pos_embed, "in_dim": enc.out_dim})
    assert dec(z).shape == x.shape


def test_downsample_comes_from_channel_mult():
    for mult, f in (([1], 1), ([1, 2], 2), ([1, 2, 2, 4], 8), ([1, 1, 2, 2, 4], 16)):
        enc = registry.build("encoder", {"name": "conv2d", "base_channels": 4, "num_res_blocks": 1,
                                         "channel_mult": mult, "mid_attention": False})
        assert enc.downsample == f
        assert enc.token_grid((3, 32, 64)) == (32 // f, 64 // f)


def test_config_values_are_validated_by_type():
    from tokcore.errors import ConfigError

    with pytest.raises(ConfigError, match="channel_mult"):
        registry.build("encoder", {"name": "conv2d", "channel_mult": 8})
    with pytest.raises(ConfigError, match="pos_embed"):
        registry.build("encoder", {"name": "vit", "pos_embed": "rope"})


@pytest.mark.parametrize("name", list(PAIRS))
def test_every_parameter_of_the_pair_gets_a_gradient(name):
    torch.manual_seed(0)
    enc, dec = build_pair(name)
    x = torch.randn(2, *PAIRS[name][3][0])
    (dec(enc(x)) - x).square().mean().backward()
    dead = [f"{part}.{n}" for part, m in (("encoder", enc), ("decoder", dec)) for n, p in m.named_parameters()
            if p.grad is None or not bool(p.grad.abs().sum() > 0)]
    assert not dead, dead


@pytest.mark.parametrize("name,steps,factor", [("conv2d", 100, 50.0), ("vit", 100, 10.0)])
def test_encoder_decoder_overfits_a_few_images(name, steps, factor):
    """Without a quantizer, the stack must fit 4 fixed images: gradients reach every layer."""
    torch.manual_seed(0)
    if name == "conv2d":
        cfg = {"base_channels": 16, "channel_mult": [1, 2], "num_res_blocks": 1}
    else:
        cfg = {"image_size": 16, "patch_size": 4, "width": 64, "depth": 2, "num_heads": 4}
    enc = registry.build("encoder", {"name": name, **cfg, "out_dim": 16})
    dec = registry.build("decoder", {"name": name, **cfg, "in_dim": 16})
    # smooth-ish images (a few blobs), so the target is learnable, not white noise
    images = torch.nn.functional.interpolate(torch.randn(4, 3, 4, 4), size=16, mode="bilinear")
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=2e-3)
    losses = []
    for _ in range(steps):
        loss = (dec(enc(images)) - images).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / factor, (losses[0], losses[-1])


@pytest.mark.parametrize("mult,factor", [([1, 2, 2, 4], 8), ([1, 1, 2, 2, 4], 16)])
def test_conv2d_downsamples_8x_or_16x_by_config_and_decodes_back(mult, factor):
    torch.manual_seed(0)
    cfg = {"base_channels": 4, "channel_mult": mult, "num_res_blocks": 1}
    enc = registry.build("encoder", {"name": "conv2d", **cfg, "out_dim": 4})
    dec = registry.build("decoder", {"name": "conv2d", **cfg, "in_dim": 4})
    assert enc.downsample == dec.upsample == factor
    x = torch.randn(1, 3, 64, 96)
    z = enc(x)
    assert z.shape == (1, 64 // factor, 96 // factor, 4)
    y = dec(z)
    assert y.shape == x.shape
    y.square().mean().backward()
    assert enc.body.conv_in.weight.grad is not None and bool(enc.body.conv_in.weight.grad.abs().sum() > 0)


def test_vit_learned_position_embedding_trains_from_other_resolutions():
    """The parameter is built for one grid; batches at other sizes reach it through the
    interpolation, so multi-resolution training updates one embedding."""
    torch.manual_seed(0)
    enc = registry.build("encoder", {"name": "vit", **TINY_VIT, "out_dim": 4})
    for side in (8, 24, 32):
        enc.zero_grad()
        enc(torch.randn(1, 3, side, side)).square().mean().backward()
        assert enc.pos_embed.weight.shape == (4, 4, 32)
        assert bool(enc.pos_embed.weight.grad.abs().sum() > 0), side
    with torch.no_grad():  # at the built size the embedding is the parameter itself
        assert torch.equal(enc.pos_embed.embedding(4, 4), enc.pos_embed.weight)
