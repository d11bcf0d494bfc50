"""The `dct1d` encoder and decoder: one global token in the low-frequency domain."""

import math

import pytest
import torch

from tokcore import registry
from tokcore.errors import ConfigError
from tokcore.nn.lowpass import DCTLowpass
from tokcore.builtins.models.spectral import DCTDecoder, DCTEncoder


def _pair(channels=3, frames=20, keep=6, hidden=0, standardize=False):
    dim = keep * channels
    enc = DCTEncoder(in_channels=channels, out_dim=dim, keep=keep, hidden=hidden, standardize=standardize)
    dec = DCTDecoder(in_dim=dim, out_channels=channels, frames=frames, keep=keep, hidden=hidden)
    return enc, dec


def test_registered_and_one_token_per_sequence():
    assert registry.get("encoder", "dct1d") is DCTEncoder
    assert registry.get("decoder", "dct1d") is DCTDecoder
    enc = DCTEncoder(in_channels=2, out_dim=5, keep=4, hidden=8)
    dec = DCTDecoder(in_dim=5, out_channels=2, frames=16, keep=4, hidden=8)
    z = enc(torch.randn(3, 16, 2))
    assert z.shape == (3, 1, 5)
    assert enc.token_grid((16, 2)) == (1,)
    assert dec(z).shape == (3, 16, 2)


def test_at_init_the_pair_is_the_lowpass_projection():
    # identity-initialized maps (and zero-initialized residual MLPs): decode(encode(x)) keeps
    # exactly the lowest `keep` frequencies
    enc, dec = _pair(hidden=16)
    x = torch.randn(4, 20, 3)
    torch.testing.assert_close(dec(enc(x)), DCTLowpass(6)(x), atol=1e-5, rtol=0)


def test_all_frequencies_kept_is_an_exact_inverse():
    enc, dec = _pair(frames=12, keep=12)
    x = torch.randn(2, 12, 3, dtype=torch.float64)
    enc, dec = enc.double(), dec.double()
    torch.testing.assert_close(dec(enc(x)), x)


def test_a_slow_cosine_is_one_coefficient():
    enc, _ = _pair(channels=1, frames=32, keep=8)
    t = torch.arange(32, dtype=torch.float32)
    x = torch.cos(math.pi * (t + 0.5) * 3 / 32)[None, :, None]
    z = enc(x)[0, 0]
    assert z.abs().argmax() == 3
    torch.testing.assert_close(z[3], torch.tensor(math.sqrt(16.0)))  # orthonormal DCT: sqrt(T/2)
    assert z.abs().sum() - z[3].abs() < 1e-4


def test_standardizes_on_the_first_training_batch_and_keeps_it():
    enc = DCTEncoder(in_channels=2, out_dim=8, keep=4)
    x = torch.randn(64, 16, 2) * torch.tensor([5.0, 0.1]) + torch.tensor([3.0, -1.0])
    enc.eval()
    enc(x)
    stats = enc.standardize
    assert not bool(stats.initialized)  # eval never measures
    enc.train()
    enc(x)
    assert bool(stats.initialized)
    c = enc.coefficients(x)
    torch.testing.assert_close(stats.mean, c.mean(0))
    torch.testing.assert_close(stats.std, c.std(0, unbiased=False), rtol=1e-4, atol=1e-6)
    kept = stats.mean.clone()
    enc(x * 10)  # a later batch does not move the statistics
    torch.testing.assert_close(stats.mean, kept)
    assert {"standardize.mean", "standardize.std", "standardize.initialized"} <= set(enc.state_dict())


def test_a_tokenizer_ties_the_decoder_to_the_encoders_statistics():
    from tokcore.builtins.quantizers.identity import Identity
    from tokcore.tokenizer import Tokenizer

    enc, dec = _pair(channels=2, frames=16, keep=5, standardize=True)
    model = Tokenizer(enc, Identity(dim=10), dec).train()
    x = torch.randn(32, 16, 2) * 7.0 + 2.0
    recon = model(x).recon  # measures the statistics, then decodes with them
    torch.testing.assert_close(recon, DCTLowpass(5)(x), atol=1e-4, rtol=0)
    assert dec.standardize is enc.standardize
    # an untied decoder (no tokenizer) leaves its coefficients unscaled
    assert not torch.allclose(DCTDecoder(in_dim=10, out_channels=2, frames=16, keep=5)(enc(x)), recon)


def test_channel_weights_scale_the_latent_and_the_tied_decoder_undoes_them():
    from tokcore.builtins.quantizers.identity import Identity
    from tokcore.tokenizer import Tokenizer

    x = torch.randn(32, 16, 2) * torch.tensor([4.0, 0.5]) + 1.0
    plain = DCTEncoder(in_channels=2, out_dim=10, keep=5).train()
    weighted = DCTEncoder(in_channels=2, out_dim=10, keep=5, channel_weights=[1.0, 3.0]).train()
    z_plain, z_weighted = plain(x)[:, 0], weighted(x)[:, 0]
    # coefficients are flattened as (keep, channels): odd latent entries are channel 1's
    torch.testing.assert_close(z_weighted[:, 0::2], z_plain[:, 0::2])
    torch.testing.assert_close(z_weighted[:, 1::2], 3.0 * z_plain[:, 1::2])
    assert "standardize.weight" in weighted.state_dict()

    dec = DCTDecoder(in_dim=10, out_channels=2, frames=16, keep=5)
    model = Tokenizer(weighted, Identity(dim=10), dec).train()
    torch.testing.assert_close(model(x).recon, DCTLowpass(5)(x), atol=1e-4, rtol=0)
    # saved and restored with the weights
    fresh = DCTEncoder(in_channels=2, out_dim=10, keep=5)
    fresh.load_state_dict(weighted.state_dict())
    torch.testing.assert_close(fresh.eval()(x), weighted.eval()(x))


def test_gradients_reach_every_parameter():
    enc, dec = _pair(hidden=8, standardize=True)
    enc.train()
    # zero-initialized MLP outputs block their first layer's gradient: move them off zero
    for mlp in (enc.mlp.mlp, dec.mlp.mlp):
        torch.nn.init.normal_(mlp[2].weight, std=0.1)
    x = torch.randn(8, 20, 3, requires_grad=True)
    dec(enc(x)).square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for name, p in [*enc.named_parameters(), *dec.named_parameters()]:
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_clear_errors():
    with pytest.raises(ValueError, match="keep"):
        DCTEncoder(keep=0)
    with pytest.raises(ValueError, match="frames=4 is less than keep=6"):
        DCTDecoder(in_dim=4, frames=4, keep=6)
    enc = DCTEncoder(in_channels=2, out_dim=4, keep=8)
    with pytest.raises(ValueError, match="T=5 frames cannot give keep=8"):
        enc(torch.randn(1, 5, 2))
    with pytest.raises(ConfigError, match="channel_weights has 3 values for 2 channels"):
        DCTEncoder(in_channels=2, keep=4, channel_weights=[1.0, 2.0, 3.0])
    with pytest.raises(ConfigError, match="must all be > 0"):
        DCTEncoder(in_channels=2, keep=4, channel_weights=[1.0, 0.0])
    dec = DCTDecoder(in_dim=4, out_channels=2, frames=16, keep=8)
    with pytest.raises(ValueError, match="one token per sequence"):
        dec(torch.randn(1, 3, 4))
