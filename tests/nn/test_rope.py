"""M-RoPE: against a direct complex-number rotation, its relative-position property, and its
1D special case."""

import math

import pytest
import torch

from tokcore.nn.rope import (
    MRoPE,
    apply_rope,
    default_sections,
    grid_positions,
    sequence_positions,
)
from tokcore.nn.transformer import Attention


def reference_rotation(x, positions, sections, base=10000.0, axis_of_plane=None):
    """Plane i of x (entries 2i, 2i+1 as a complex number) times exp(1j * p[axis(i)] * base^(-2i/d)),
    computed one plane at a time in float64."""
    d = x.shape[-1]
    out = torch.empty_like(x, dtype=torch.float64)
    axis_of_plane = axis_of_plane or [a for a, s in enumerate(sections) for _ in range(s)]
    for i in range(d // 2):
        z = torch.complex(x[..., 2 * i].double(), x[..., 2 * i + 1].double())
        angle = positions[:, axis_of_plane[i]].double() * base ** (-2.0 * i / d)
        z = z * torch.polar(torch.ones_like(angle), angle)
        out[..., 2 * i], out[..., 2 * i + 1] = z.real, z.imag
    return out


@pytest.mark.parametrize("sections", [None, (2, 3, 3), (8, 0, 0)])
def test_matches_a_direct_complex_rotation(sections):
    torch.manual_seed(0)
    rope = MRoPE(16, axes=3, sections=sections)
    positions = torch.cat([grid_positions(2, 3, 4), sequence_positions(5, 4, 3)])  # patches, then latents
    x = torch.randn(2, 3, len(positions), 16)
    got = apply_rope(x, rope.angles(positions))
    want = reference_rotation(x, positions, rope.sections)
    torch.testing.assert_close(got.double(), want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got.norm(dim=-1), x.norm(dim=-1))  # a rotation keeps lengths


def test_scores_depend_on_position_differences_only():
    torch.manual_seed(0)
    rope = MRoPE(32, axes=3)
    q, k = torch.randn(1, 2, 24, 32), torch.randn(1, 2, 24, 32)
    positions = grid_positions(2, 3, 4)
    shifted = positions + torch.tensor([5, -3, 11])  # one offset for every token
    scores = apply_rope(q, rope.angles(positions)) @ apply_rope(k, rope.angles(positions)).transpose(-1, -2)
    moved = apply_rope(q, rope.angles(shifted)) @ apply_rope(k, rope.angles(shifted)).transpose(-1, -2)
    torch.testing.assert_close(scores, moved, atol=1e-4, rtol=1e-4)
    other = positions + torch.tensor([0, 1, 0]) * (torch.arange(24)[:, None] % 2)  # not a common shift
    changed = apply_rope(q, rope.angles(other)) @ apply_rope(k, rope.angles(other)).transpose(-1, -2)
    assert (changed - scores).abs().max() > 1e-2


def test_positions_on_the_diagonal_are_1d_rope():
    torch.manual_seed(0)
    rope3, rope1 = MRoPE(16, axes=3), MRoPE(16, axes=1)
    x = torch.randn(1, 1, 6, 16)
    p = sequence_positions(6, 7, 3)
    torch.testing.assert_close(apply_rope(x, rope3.angles(p)), apply_rope(x, rope1.angles(p[:, :1])))


def test_per_sample_angles_and_attention_with_rope_are_translation_invariant():
    torch.manual_seed(0)
    attn = Attention(32, 4, num_kv_heads=2, qk_norm=True).eval()
    rope = MRoPE(8, axes=3)
    x = torch.randn(2, 12, 32)
    p = grid_positions(1, 3, 4)
    angles = torch.stack([rope.angles(p), rope.angles(p + 9)])  # (B, L, planes): sample 1 shifted
    out = attn(x, rope=angles)
    torch.testing.assert_close(out[0], attn(x[:1], rope=rope.angles(p))[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out[1], attn(x[1:], rope=rope.angles(p))[0], atol=1e-5, rtol=1e-5)


def test_sections_and_errors():
    assert default_sections(16, 3) == (4, 6, 6) and sum(default_sections(13, 3)) == 13
    assert default_sections(8, 2) == (4, 4) and default_sections(5, 1) == (5,)
    with pytest.raises(ValueError, match="even head width"):
        MRoPE(15)
    with pytest.raises(ValueError, match="sum to head_dim/2"):
        MRoPE(16, sections=(1, 2, 3))
    with pytest.raises(ValueError, match="coordinates"):
        MRoPE(16).angles(torch.zeros(4, 2))
    assert math.isclose(float(MRoPE(16).inv_freq()[1]), 10000 ** (-2 / 16), rel_tol=1e-6)


def test_interleaved_planes_give_every_axis_high_and_low_frequencies():
    torch.manual_seed(0)
    rope = MRoPE(16, axes=3, sections=(2, 3, 3), interleaved=True)
    planes = [0, 1, 2, 0, 1, 2, 1, 2]  # dealt in turn; t's 2 planes run out first
    assert rope.axis_of_plane == planes
    positions = grid_positions(2, 3, 4)
    x = torch.randn(1, 2, len(positions), 16)
    want = reference_rotation(x, positions, rope.sections, axis_of_plane=planes)
    torch.testing.assert_close(apply_rope(x, rope.angles(positions)).double(), want, atol=1e-5, rtol=1e-5)
    fastest = {a: max(rope.inv_freq()[i].item() for i, b in enumerate(planes) if b == a) for a in range(3)}
    assert min(fastest.values()) >= 0.1  # in blocks, w would turn by base^(-10/16) = 0.003 at most
