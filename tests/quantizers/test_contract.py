"""Every built-in quantizer, built through the registry, in several configurations: shapes,
dtypes, exact decoding of indices, gradients, eval/inference behaviour, checkpoints, docs."""

import io

import pytest
import torch

import tokcore.registry as registry
from tokcore.errors import ConfigError
from tokcore.registry.params import params_of

CONFIGS = {
    "vq": {"name": "vq", "dim": 16, "codebook_size": 64},
    "vq-cosine-heads": {"name": "vq", "dim": 16, "codebook_size": 64, "heads": 2, "cosine": True},
    "vq-projected-loss": {"name": "vq", "dim": 16, "codebook_size": 64, "codebook_dim": 6,
                          "codebook_learning": "loss", "kmeans_init": False},
    "fsq": {"name": "fsq", "levels": [8, 5, 5, 5]},
    "fsq-projected": {"name": "fsq", "levels": [3, 4], "dim": 16},
    "lfq": {"name": "lfq", "codebook_size": 2 ** 10},
    "lfq-projected": {"name": "lfq", "codebook_size": 2 ** 10, "dim": 16},
    "rvq": {"name": "rvq", "dim": 16, "codebook_size": 32, "stages": 3, "codebook_dim": 8},
    "rfsq": {"name": "rfsq", "levels": [5, 5, 5], "stages": 3, "dim": 16},
    "identity": {"name": "identity", "dim": 16},
}


def build(key):
    torch.manual_seed(0)
    return registry.build("quantizer", CONFIGS[key])


def trained(key, steps=3):
    q = build(key)
    for _ in range(steps):
        q(torch.randn(4, 6, q.dim))
    return q.eval()


@pytest.mark.parametrize("key", CONFIGS)
def test_output_shapes_dtypes_and_index_range(key):
    q = trained(key)
    z = torch.randn(3, 5, 7, q.dim)
    out = q(z)
    assert out.quantized.shape == z.shape and out.quantized.dtype == z.dtype
    if q.codebook_size is None:
        assert out.indices is None
        return
    assert out.indices.dtype == torch.int64
    assert out.indices.shape == (3, 5, 7, *q.index_shape)
    assert 0 <= int(out.indices.min()) and int(out.indices.max()) < q.codebook_size
    assert set(out.stats) >= {"usage", "perplexity"}


@pytest.mark.parametrize("key", [k for k in CONFIGS if k != "identity"])
def test_indices_decode_exactly_in_eval_mode(key):
    q = trained(key)
    z = torch.randn(2, 9, q.dim, requires_grad=True)  # gradients enabled: still exact
    out = q(z)
    assert torch.equal(q.indices_to_codes(out.indices), out.quantized)


@pytest.mark.parametrize("key", [k for k in CONFIGS if k != "identity"])
def test_bf16_autocast_keeps_fp32_math(key):
    q = trained(key)
    z = torch.randn(2, 9, q.dim)
    reference = q(z)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = q(z.bfloat16())
    assert out.quantized.dtype == torch.bfloat16
    assert torch.equal(q.indices_to_codes(out.indices, dtype=torch.bfloat16), out.quantized)
    # the search itself ran in fp32: same indices as the fp32 call on the same (rounded) input
    assert torch.equal(out.indices, q(z.bfloat16().float()).indices)
    assert reference.indices.shape == out.indices.shape


@pytest.mark.parametrize("key", CONFIGS)
def test_straight_through_gradients_reach_the_encoder(key):
    q = build(key).train()
    encoder = torch.nn.Linear(8, q.dim)
    out = q(encoder(torch.randn(32, 8)))
    out.quantized.square().mean().backward()  # the reconstruction path alone
    assert encoder.weight.grad is not None and encoder.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("key", CONFIGS)
def test_eval_and_inference_mode_leave_state_alone(key):
    q = trained(key)
    before = {k: v.clone() for k, v in q.state_dict().items()}
    q(torch.randn(4, q.dim))
    q.train()
    with torch.inference_mode():
        q(torch.randn(4, q.dim))
    after = q.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("key", CONFIGS)
def test_state_dict_round_trips(key):
    q = trained(key)
    buffer = io.BytesIO()
    torch.save(q.state_dict(), buffer)
    buffer.seek(0)
    fresh = build(key)
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    fresh.eval()
    z = torch.randn(5, q.dim)
    a, b = q(z), fresh(z)
    assert torch.equal(a.quantized, b.quantized)
    assert (a.indices is None) or torch.equal(a.indices, b.indices)


@pytest.mark.parametrize("name", ["vq", "fsq", "lfq", "rvq", "rfsq", "identity"])
def test_every_parameter_is_annotated_and_documented(name):
    assert name in registry.list("quantizer")
    params, _ = params_of(registry.get("quantizer", name))
    for p in params:
        assert p.type_name != "any", f"{name}.{p.name} has no annotation"
        assert p.doc, f"{name}.{p.name} is not documented"


@pytest.mark.parametrize("config, key", [
    ({"name": "fsq", "levels": []}, "levels"),
    ({"name": "fsq", "levels": [1, 5]}, "levels"),
    ({"name": "lfq", "codebook_size": 1000}, "codebook_size"),
    ({"name": "vq", "dim": 10, "codebook_size": 8, "heads": 3}, "heads"),
    ({"name": "vq", "dim": 8, "codebook_size": 8, "decay": 1.0}, "decay"),
    ({"name": "rvq", "dim": 8, "codebook_size": 8, "stages": 0}, "stages"),
])
def test_invalid_values_are_config_errors(config, key):
    with pytest.raises(ConfigError) as err:
        registry.build("quantizer", config)
    assert err.value.key == key
