"""The causal 3D-conv video encoder/decoder: shapes for images and clips, causality in time,
the first frame coded alone, gradients, and clear errors for clips of the wrong length."""

import pytest
import torch

from tokcore import registry
from tokcore.nn.blocks import ResBlock, plain_layers
from tokcore.builtins.models.causal3d import CausalConv3d, CausalDownsample3d, CausalUpsample3d, FrameGroupNorm
from tokcore.testing import check_component

TINY = {"base_channels": 8, "channel_mult": [1, 2, 2], "num_res_blocks": 1, "mid_attention": True}


def build_pair(temporal_compression=4, dim=4, **kw):
    torch.manual_seed(0)
    cfg = {**TINY, "temporal_compression": temporal_compression, **kw}
    enc = registry.build("encoder", {"name": "causal3d", **cfg, "out_dim": dim})
    dec = registry.build("decoder", {"name": "causal3d", **cfg, "in_dim": dim})
    return enc.eval(), dec.eval()


@pytest.mark.parametrize("kind", ["encoder", "decoder"])
def test_contract(kind):
    check_component(kind, "causal3d")


@pytest.mark.parametrize("frames,latent_frames", [(1, 1), (5, 2), (9, 3), (13, 4)])
def test_one_plus_4k_frames_give_one_plus_k_latent_frames(frames, latent_frames):
    enc, dec = build_pair()
    x = torch.randn(2, 3, frames, 16, 12)
    with torch.no_grad():
        z = enc(x)
        assert z.shape == (2, latent_frames, 4, 3, 4)
        assert enc.token_grid((3, frames, 16, 12)) == (latent_frames, 4, 3)
        assert dec(z).shape == x.shape


def test_spatial_and_temporal_factors_are_configured_apart():
    enc, dec = build_pair(temporal_compression=2, channel_mult=[1, 1, 2, 2])  # 2x8x8
    assert enc.downsample == 8 and enc.token_grid((3, 9, 32, 16)) == (5, 4, 2)
    with torch.no_grad():
        assert dec(torch.randn(1, 5, 4, 2, 4)).shape == (1, 3, 9, 32, 16)
    enc, _ = build_pair(temporal_compression=1)
    assert enc.token_grid((3, 7, 8, 8)) == (7, 2, 2)


def test_perturbing_a_frame_never_changes_earlier_latents_or_outputs():
    enc, dec = build_pair()
    x = torch.randn(1, 3, 13, 8, 8)
    with torch.no_grad():
        z = enc(x)
        for t in (1, 4, 5, 8, 12):  # latent j sees frames <= 4j: frame t reaches latents j >= ceil(t/4)
            bumped = x.clone()
            bumped[:, :, t] += 3.0
            first_changed = -(-t // 4)
            zb = enc(bumped)
            assert torch.equal(zb[:, :first_changed], z[:, :first_changed]), t
            assert not torch.allclose(zb[:, first_changed], z[:, first_changed]), t
        y = dec(z)
        for j in (1, 2, 3):  # output frames 4(j-1)+1 .. 4j come from latents <= j
            bumped = z.clone()
            bumped[:, j] += 3.0
            yb = dec(bumped)
            first_changed = 4 * (j - 1) + 1
            assert torch.equal(yb[:, :, :first_changed], y[:, :, :first_changed]), j
            assert not torch.allclose(yb[:, :, first_changed], y[:, :, first_changed]), j


def test_an_image_is_coded_like_the_first_frame_of_a_clip():
    enc, dec = build_pair()
    clip = torch.randn(2, 3, 9, 8, 8)
    with torch.no_grad():
        image_latents = enc(clip[:, :, :1])
        assert image_latents.shape == (2, 1, 2, 2, 4)
        assert torch.allclose(image_latents, enc(clip)[:, :1], atol=1e-6)
        assert torch.allclose(dec(image_latents), dec(enc(clip))[:, :, :1], atol=1e-5)  # conv sums differ in order


def test_every_parameter_gets_a_gradient_from_images_and_clips():
    enc, dec = build_pair()
    enc.train(), dec.train()
    for frames in (1, 9):
        enc.zero_grad(), dec.zero_grad()
        x = torch.randn(2, 3, frames, 8, 8)
        (dec(enc(x)) - x).square().mean().backward()
        dead = [n for m in (enc, dec) for n, p in m.named_parameters()
                if p.grad is None or not bool(p.grad.abs().sum() > 0)]
        # with one frame too: the causal pad repeats frame 0 into every temporal tap
        assert not dead, (frames, dead)


@pytest.mark.parametrize("frames", [2, 4, 6, 8])
def test_a_clip_of_the_wrong_length_is_refused_with_the_lengths_that_work(frames):
    enc, _ = build_pair()
    with pytest.raises(ValueError, match=rf"causal3d encoder: T={frames} frames.*needs T = 1 \+ 4k \(1, 5, 9, 13, ...\); "
                                         rf"trim the clip to {1 + 4 * ((frames - 1) // 4)} frames"):
        enc(torch.randn(1, 3, frames, 8, 8))


def test_bad_sizes_and_settings_are_named():
    enc, _ = build_pair()
    with pytest.raises(ValueError, match=r"causal3d encoder: H=10 is not divisible by downsample=4"):
        enc(torch.randn(1, 3, 5, 10, 8))
    with pytest.raises(ValueError, match=r"causal3d encoder: input must be \(B, C, T, H, W\)"):
        enc(torch.randn(1, 3, 8, 8))
    with pytest.raises(ValueError, match=r"temporal_compression must be a power of two from 1 to the spatial factor 4"):
        build_pair(temporal_compression=8)
    with pytest.raises(ValueError, match=r"temporal_compression must be a power of two"):
        build_pair(temporal_compression=3)


def test_causal_layers_keep_or_halve_time_as_promised():
    x = torch.randn(1, 4, 7, 8, 8)
    assert CausalConv3d(4, 6, 3)(x).shape == (1, 6, 7, 8, 8)
    assert CausalDownsample3d(4, temporal=True)(x).shape == (1, 4, 4, 4, 4)
    assert CausalDownsample3d(4, temporal=False)(x).shape == (1, 4, 7, 4, 4)
    assert CausalUpsample3d(4, temporal=True)(torch.randn(1, 4, 4, 4, 4)).shape == (1, 4, 7, 8, 8)
    # per-frame statistics: a frame's normalized values ignore every other frame
    norm = FrameGroupNorm(4)
    y = norm(x)
    x2 = x.clone()
    x2[:, :, 3:] *= 10.0
    assert torch.allclose(norm(x2)[:, :, :3], y[:, :, :3], atol=1e-6)


def test_plain_layers_are_what_the_2d_blocks_always_built():
    torch.manual_seed(0)
    a = ResBlock(2, 8, 16)
    torch.manual_seed(0)
    b = ResBlock(plain_layers(2), 8, 16)
    x = torch.randn(1, 8, 6, 6)
    assert a.state_dict().keys() == b.state_dict().keys()
    assert torch.equal(a(x), b(x))
