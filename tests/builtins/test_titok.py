"""TiTok: contract, per-sample token counts, any size without interpolation, padding that
does not leak, training that draws the count per sample, errors."""

import pytest
import torch

from tokcore.builtins.models.titok import (
    TiTokDecoder,
    TiTokEncoder,
    patchify3d,
    unpatchify3d,
)
from tokcore.errors import ConfigError, TokcoreError
from tokcore.testing import check_component
from tokcore.tokenizer import build_tokenizer

ARCH = {"image_size": 16, "patch_size": 4, "width": 32, "depth": 2, "num_heads": 2, "max_tokens": 12}
VIDEO = {**ARCH, "frames": 4, "temporal_patch_size": 2}


def tokenizer(arch=ARCH, **enc):
    torch.manual_seed(0)
    return build_tokenizer({"encoder": {"name": "titok", "out_dim": 5, "min_tokens": 2, **arch, **enc},
                            "quantizer": {"name": "fsq", "levels": [7, 7, 7, 5, 5]},
                            "decoder": {"name": "titok", **arch}}).eval()


@pytest.mark.parametrize("kind", ["encoder", "decoder"])
def test_contract(kind):
    check_component(kind, "titok")


def test_patchify3d_round_trips_and_orders_patches_t_h_w():
    x = torch.randn(2, 3, 4, 8, 12)
    p = patchify3d(x, 2, 4)
    assert p.shape == (2, 2 * 2 * 3, 2 * 4 * 4 * 3)
    torch.testing.assert_close(unpatchify3d(p, (2, 2, 3), 2, 4, 3), x, rtol=0, atol=0)
    # patch (t=1, h=0, w=2) holds frames 2-3, rows 0-3, columns 8-11, channels last
    want = x[0, :, 2:4, 0:4, 8:12].permute(1, 2, 3, 0).reshape(-1)
    torch.testing.assert_close(p[0, 1 * 6 + 0 * 3 + 2], want, rtol=0, atol=0)


@pytest.mark.parametrize("arch,shape", [(ARCH, (3, 16, 16)), (VIDEO, (3, 4, 16, 16))])
def test_num_tokens_per_sample_gives_that_many_tokens_and_decodes_to_the_input_shape(arch, shape):
    tok = tokenizer(arch)
    x = torch.rand(3, *shape)
    tokens = tok.encode(x, num_tokens=[2, 7, 12])
    assert tokens.indices.shape == (3, 12) and tokens.mask.sum(1).tolist() == [2, 7, 12]
    assert int(tokens.indices.max()) < 8575 and bool((tokens.indices[~tokens.mask] == 0).all())
    assert tok.decode(tokens).shape == x.shape
    one = tok.encode(x, num_tokens=5)
    assert one.indices.shape == (3, 5) and bool(one.mask.all())
    assert tok.encode(x).indices.shape == (3, 12)  # default: the most


def test_a_padded_batch_gives_what_each_sample_gives_alone():
    tok = tokenizer()
    x = torch.rand(3, 3, 16, 16)
    counts = [3, 12, 6]
    batch = tok.encode(x, num_tokens=counts)
    recon = tok.decode(batch)
    for b, k in enumerate(counts):
        alone = tok.encode(x[b:b + 1], num_tokens=k)
        assert torch.equal(batch.indices[b, :k], alone.indices[0])
        torch.testing.assert_close(recon[b], tok.decode(alone)[0], atol=1e-5, rtol=1e-5)
    # and a sample's tokens depend on how many it reads: the encoder is not a truncation
    with torch.no_grad():
        assert not torch.allclose(tok.encoder(x[:1], torch.tensor([12]))[0, :3], tok.encoder(x[:1], torch.tensor([3]))[0])


def test_one_model_encodes_and_decodes_other_sizes_with_the_same_weights():
    small = tokenizer(VIDEO)
    big = tokenizer({**VIDEO, "image_size": 32, "frames": 8})  # built for another size ...
    big.load_state_dict(small.state_dict(), strict=True)  # ... holds the same parameters: no size-bound table
    x = torch.rand(2, 3, 6, 24, 32)  # neither size, and not square
    t = small.encode(x, num_tokens=[4, 9])
    assert torch.equal(t.indices, big.encode(x, num_tokens=[4, 9]).indices)
    assert small.decode(t, size=(6, 24, 32)).shape == x.shape
    assert small.decode(t, size=(2, 8, 8)).shape == (2, 3, 2, 8, 8)
    image = tokenizer()
    assert image.decode(image.encode(torch.rand(1, 3, 20, 36), num_tokens=3), size=(20, 36)).shape == (1, 3, 20, 36)


def test_training_draws_the_count_per_sample_and_learns():
    tok = tokenizer({**ARCH, "depth": 1}, min_tokens=3).train()
    counts = torch.stack([tok.encoder.draw_num_tokens(4) for _ in range(50)])
    assert counts.min() == 3 and counts.max() == 12
    torch.manual_seed(0)
    ramp = torch.linspace(-1, 1, 16)
    x = torch.tanh(torch.randn(4, 3, 1, 1) * ramp[:, None] + torch.randn(4, 3, 1, 1) * ramp)  # smooth images
    opt = torch.optim.Adam(tok.parameters(), lr=5e-3)
    losses = []
    for _ in range(40):
        out = tok(x)
        loss = (out.recon - x).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]  # 0.33 -> 0.23 when written
    assert out.quant.indices.shape == (4, int(out.latents.shape[1]))
    fixed = tok(x, num_tokens=torch.tensor([2, 2, 5, 5]))
    assert fixed.latents.shape[1] == 5 and bool((fixed.quant.quantized[:2, 2:] == 0).all())


def test_options_gqa_geglu_and_info():
    tok = tokenizer(num_kv_heads=1, mlp="geglu")
    assert tok.encoder.backbone.transformer.blocks[0].attn.num_kv_heads == 1
    assert tok.encode(torch.rand(2, 3, 16, 16), num_tokens=4).indices.shape == (2, 4)
    info = tokenizer().info()
    assert info["variable_length"] and info["token_grid"] == [12] and info["codebook_size"] == 8575
    assert info["num_tokens"] == {"min": 1, "max": 12, "train_min": 2, "default": 12}


def test_errors_name_the_problem():
    tok = tokenizer()
    x = torch.rand(2, 3, 16, 16)
    with pytest.raises(ValueError, match=r"num_tokens\[1\] = 13 is outside \[1, 12\]"):
        tok.encode(x, num_tokens=[4, 13])
    with pytest.raises(ValueError, match="3 counts for a batch of 2"):
        tok.encode(x, num_tokens=[4, 5, 6])
    with pytest.raises(ValueError, match="H=18 is not divisible by patch_size=4"):
        tok.encode(torch.rand(1, 3, 18, 16))
    with pytest.raises(ValueError, match=r"expects \(B, C, H, W\)"):
        tok.encoder(torch.rand(1, 3, 4, 16, 16))
    with pytest.raises(ValueError, match="more than its max_tokens=12"):
        tok.decoder(torch.randn(1, 13, 5))
    with pytest.raises(ConfigError, match="min_tokens"):
        TiTokEncoder(min_tokens=200, max_tokens=128)
    with pytest.raises(ConfigError, match="even head width"):
        TiTokDecoder(in_dim=4, width=48, num_heads=16)
    vit = {"image_size": 16, "patch_size": 4, "width": 32, "depth": 1, "num_heads": 2}
    fixed = build_tokenizer({"encoder": {"name": "vit", **vit, "out_dim": 4}, "quantizer": {"name": "fsq", "levels": [5, 5, 5, 5]},
                             "decoder": {"name": "vit", **vit}})
    with pytest.raises(TokcoreError, match="token count is fixed"):
        fixed.encode(x, num_tokens=4)


def test_the_transformer_block_equals_titok_reference_block():
    """tests/fixtures/titok/make_block_fixture.py ran bytedance/1d-tokenizer's ResidualAttentionBlock
    (open_clip's block on nn.MultiheadAttention) with random weights; core's block (RoPE, QK-norm,
    GQA off) given the same weights must give the same output."""
    from pathlib import Path

    from safetensors.torch import load_file

    from tokcore.nn.transformer import TransformerBlock

    ref = load_file(str(Path(__file__).parents[1] / "fixtures/titok/block.safetensors"))
    w = {k.removeprefix("weights."): v for k, v in ref.items() if k.startswith("weights.")}
    block = TransformerBlock(32, 4, mlp_ratio=4.0).eval()
    block.load_state_dict({
        "norm1.weight": w["ln_1.weight"], "norm1.bias": w["ln_1.bias"],
        "attn.qkv.weight": w["attn.in_proj_weight"], "attn.qkv.bias": w["attn.in_proj_bias"],
        "attn.proj.weight": w["attn.out_proj.weight"], "attn.proj.bias": w["attn.out_proj.bias"],
        "norm2.weight": w["ln_2.weight"], "norm2.bias": w["ln_2.bias"],
        "mlp.fc1.weight": w["mlp.c_fc.weight"], "mlp.fc1.bias": w["mlp.c_fc.bias"],
        "mlp.fc2.weight": w["mlp.c_proj.weight"], "mlp.fc2.bias": w["mlp.c_proj.bias"],
    })
    with torch.no_grad():
        got = block(ref["input"].transpose(0, 1))  # the reference is (L, N, E), core (N, L, E)
    torch.testing.assert_close(got.transpose(0, 1), ref["output"], atol=1e-5, rtol=1e-5)
