"""The shared building blocks: shapes in every conv dimension, embeddings, patchify, attention."""

import pytest
import torch

from tokcore.nn.blocks import Downsample, ResBlock, SpatialSelfAttention, Upsample
from tokcore.nn.embeddings import LearnedPosEmbed1d, PosEmbed2d, sincos_1d, sincos_2d
from tokcore.nn.patch import patchify, unpatchify
from tokcore.nn.resnet import ResNetDown, ResNetUp
from tokcore.nn.transformer import Attention, TransformerBlock

SIZES = {1: (16,), 2: (8, 12), 3: (4, 8, 8)}


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_resblock_and_resampling_in_every_conv_dimension(dims):
    x = torch.randn(2, 8, *SIZES[dims])
    assert ResBlock(dims, 8, 8)(x).shape == x.shape
    assert ResBlock(dims, 8, 16)(x).shape == (2, 16, *SIZES[dims])
    down = Downsample(dims, 8)(x)
    assert down.shape == (2, 8, *(s // 2 for s in SIZES[dims]))
    assert Upsample(dims, 8)(down).shape == x.shape
    assert SpatialSelfAttention(8, num_heads=2)(x).shape == x.shape


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_resnet_trunks_mirror_each_other(dims):
    down = ResNetDown(dims, 3, 4, base_channels=8, channel_mult=[1, 2, 2], num_res_blocks=1, mid_attention=True)
    up = ResNetUp(dims, 4, 3, base_channels=8, channel_mult=[1, 2, 2], num_res_blocks=1, mid_attention=True)
    assert down.factor == up.factor == 4
    x = torch.randn(1, 3, *SIZES[dims])
    z = down(x)
    assert z.shape == (1, 4, *(s // 4 for s in SIZES[dims]))
    assert up(z).shape == x.shape


def test_attention_mask_hides_masked_tokens():
    torch.manual_seed(0)
    attn = Attention(16, num_heads=4).eval()
    x = torch.randn(1, 6, 16)
    mask = torch.tensor([[True, True, True, True, False, False]])
    changed = x.clone()
    changed[:, 4:] = torch.randn(1, 2, 16)  # only masked tokens differ
    with torch.no_grad():
        a, b = attn(x, mask), attn(changed, mask)
    assert torch.allclose(a[:, :4], b[:, :4], atol=1e-6)
    assert not torch.allclose(attn(x)[:, :4], attn(changed)[:, :4])


def test_transformer_block_rejects_width_not_divisible_by_heads():
    with pytest.raises(ValueError, match="width 30 is not divisible by num_heads=4"):
        TransformerBlock(30, num_heads=4)


def test_patchify_round_trips_and_groups_pixels_by_patch():
    x = torch.arange(2 * 3 * 8 * 12, dtype=torch.float32).reshape(2, 3, 8, 12)
    tokens = patchify(x, 4)
    assert tokens.shape == (2, 2, 3, 4 * 4 * 3)
    assert torch.equal(unpatchify(tokens, 4, 3), x)
    # the token at grid (1, 2) holds exactly the pixels of that 4x4 patch
    patch = x[:, :, 4:8, 8:12]
    assert torch.equal(tokens[:, 1, 2].sort(dim=-1).values, patch.flatten(1).sort(dim=-1).values)


def test_sinusoids():
    e = sincos_1d(torch.arange(5), 8)
    assert e.shape == (5, 8)
    assert torch.allclose(e[0], torch.tensor([0.0] * 4 + [1.0] * 4))  # sin 0, cos 0
    grid = sincos_2d(3, 4, 16)
    assert grid.shape == (3, 4, 16)
    assert torch.equal(grid[1, 0, :8], grid[1, 3, :8]) and torch.equal(grid[0, 2, 8:], grid[2, 2, 8:])
    with pytest.raises(ValueError, match="divisible by 4"):
        sincos_2d(2, 2, 6)


def test_pos_embed_2d_is_exact_on_its_grid_and_resized_elsewhere():
    pe = PosEmbed2d((4, 4), 16, learned=True)
    assert pe.embedding(4, 4) is pe.weight
    assert pe.embedding(8, 6).shape == (8, 6, 16)
    fixed = PosEmbed2d((4, 4), 16, learned=False)
    assert len(list(fixed.parameters())) == 0
    assert torch.allclose(fixed.embedding(4, 4), sincos_2d(4, 4, 16))
    # an 8x8 grid covers the same positions at half steps: every other row/column matches
    assert torch.allclose(fixed.embedding(8, 8)[::2, ::2], sincos_2d(4, 4, 16), atol=1e-6)


def test_learned_pos_embed_1d_names_max_len():
    pe = LearnedPosEmbed1d(4, 8)
    assert pe(torch.zeros(2, 3, 8)).shape == (2, 3, 8)
    with pytest.raises(ValueError, match="5 tokens is longer than max_len=4"):
        pe(torch.zeros(1, 5, 8))
