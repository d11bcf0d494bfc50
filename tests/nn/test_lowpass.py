"""The DCT low-pass filter and the transformer1d decoder's `lowpass` option."""

import math

import numpy as np
import pytest
import torch

from tokcore import registry
from tokcore.nn.lowpass import dct_matrix
from tokcore.nn.lowpass import DCTLowpass, dct_basis


def test_basis_is_the_codecs_dct_and_orthonormal():
    basis = dct_basis(16, 16, torch.float64)
    np.testing.assert_allclose(basis.numpy(), dct_matrix(16))
    torch.testing.assert_close(basis @ basis.T, torch.eye(16, dtype=torch.float64))


def test_keeps_low_frequencies_and_removes_high_ones():
    t = torch.arange(32, dtype=torch.float64)
    slow = torch.cos(math.pi * (t + 0.5) * 2 / 32)  # DCT frequency 2
    fast = torch.cos(math.pi * (t + 0.5) * 20 / 32)  # DCT frequency 20
    x = torch.stack([slow, slow + fast], -1)[None]  # (1, 32, 2)
    y = DCTLowpass(8)(x)
    torch.testing.assert_close(y[0, :, 0], slow)
    torch.testing.assert_close(y[0, :, 1], slow)


def test_is_a_projection_and_passes_short_sequences():
    f = DCTLowpass(6)
    x = torch.randn(3, 20, 4)
    y = f(x)
    torch.testing.assert_close(f(y), y, atol=1e-5, rtol=0)
    assert (y - x).abs().max() > 0.1  # white noise loses its high frequencies
    short = torch.randn(2, 5, 4)
    assert torch.equal(f(short), short)


def test_rejects_zero_frequencies():
    with pytest.raises(ValueError, match="keep must be >= 1"):
        DCTLowpass(0)


def test_transformer1d_decoder_lowpass_gives_smooth_output_of_the_same_shape():
    cfg = {"name": "transformer1d", "in_dim": 4, "out_channels": 3, "patch_size": 6, "width": 16, "depth": 1,
           "num_heads": 2, "max_len": 8}
    torch.manual_seed(0)
    plain = registry.build("decoder", cfg)
    smooth = registry.build("decoder", {**cfg, "lowpass": 5})
    smooth.load_state_dict(plain.state_dict())  # the filter has no weights
    z = torch.randn(2, 8, 4)
    y = smooth(z)
    assert y.shape == plain(z).shape == (2, 48, 3)
    torch.testing.assert_close(y, DCTLowpass(5)(plain(z)))
    high = torch.einsum("kt,btc->bkc", dct_basis(48, 48)[5:], y)
    assert high.abs().max() < 1e-4
    y.sum().backward()  # gradients reach the weights through the filter
    assert smooth.embed.weight.grad.abs().sum() > 0
