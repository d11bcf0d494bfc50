import math

import pytest
import torch

from tokcore import registry
from tokcore.errors import ConfigError, InputError
from tokcore.testing import contract_test

test_contract = contract_test(dist="tok-depth")

HOLES = torch.tensor([[[[0.0, 2.0], [float("inf"), float("nan")]]]])


@pytest.mark.parametrize("normalization", ["log", "metric", "robust"])
def test_holes_are_masked_and_filled_not_propagated(normalization):
    depth = registry.build("modality", {"name": "depth", "normalization": normalization})
    x = torch.tensor([[[[0.0, 2.0, 3.0], [float("inf"), float("nan"), 5.0]]]])
    assert depth.valid_mask(x).tolist() == [[[[False, True, True], [False, False, True]]]]
    n = depth.normalize(depth.validate(x))
    assert torch.isfinite(n).all()
    assert n[0, 0, 0, 0] == n[0, 0, 1, 0] == n[0, 0, 1, 1] == depth.fill_value


def test_log_and_metric_map_the_depth_range_onto_minus_one_one():
    x = torch.tensor([[[[1.0, math.sqrt(10.0), 10.0, 50.0]]]])
    log = registry.build("modality", {"name": "depth", "normalization": "log", "depth_range": [1.0, 10.0]})
    assert torch.allclose(log.normalize(x), torch.tensor([[[[-1.0, 0.0, 1.0, 1.0]]]]), atol=1e-6)  # 50 saturates
    metric = registry.build("modality", {"name": "depth", "normalization": "metric", "depth_range": [1.0, 10.0]})
    assert torch.allclose(metric.normalize(x), torch.tensor([[[[-1.0, (math.sqrt(10) - 1) / 4.5 - 1, 1.0, 1.0]]]]))
    inside = x[..., :3]
    for m in (log, metric):
        assert torch.allclose(m.denormalize(m.normalize(inside)), inside, rtol=1e-5)


def test_robust_normalization_uses_each_images_median_and_deviation():
    depth = registry.build("modality", {"name": "depth", "normalization": "robust"})
    x = torch.tensor([[[[1.0, 2.0, 3.0, 0.0]]], [[[10.0, 20.0, 60.0, float("nan")]]]])
    side = depth.side_info(x)
    assert side["shift"].tolist() == [2.0, 20.0]  # holes do not count
    assert torch.allclose(side["scale"], torch.tensor([2 / 3, 50 / 3]))
    n = depth.normalize(x)
    assert torch.allclose(n[0, 0, 0, :3], torch.tensor([-1.5, 0.0, 1.5]))
    assert torch.allclose(n[1, 0, 0, :3], torch.tensor([-0.6, 0.0, 2.4]))
    # the same scene twice as far normalizes to the same values: the scale lives in `side`
    assert torch.allclose(depth.normalize(2 * x[:1]), n[:1])
    back = depth.denormalize(n, side=side)
    valid = depth.valid_mask(x)
    assert torch.allclose(back[valid], x[valid])
    with pytest.raises(InputError, match="needs each image's shift and scale"):
        depth.denormalize(n)


def test_robust_tokens_carry_the_side_information_through_encode_and_decode():
    from tokcore.tokenizer import build_tokenizer

    model = {"encoder": {"name": "conv2d", "in_channels": 1, "out_dim": 4, "base_channels": 8,
                         "channel_mult": [1, 2], "num_res_blocks": 1, "mid_attention": False},
             "quantizer": {"name": "fsq", "levels": [5, 5, 5, 5]},
             "decoder": {"name": "conv2d", "in_dim": 4, "out_channels": 1, "base_channels": 8,
                         "channel_mult": [1, 2], "num_res_blocks": 1, "mid_attention": False}}
    tok = build_tokenizer(model, {"name": "depth", "normalization": "robust"})
    x = 2.0 + torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    tokens = tok.encode(x)
    assert tokens.side["shift"].shape == (2,)
    far = tok.encode(4 * x)  # a power of two: the normalized maps are bit-identical
    assert torch.equal(far.indices, tokens.indices)  # same shape of scene, same tokens
    assert torch.allclose(tok.decode(far), 4 * tok.decode(tokens), rtol=1e-5)


def test_max_depth_clips_far_values():
    depth = registry.build("modality", {"name": "depth", "max_depth": 10.0})
    x = torch.tensor([[[[5.0, 50.0]]]])
    assert depth.valid_mask(x).tolist() == [[[[True, False]]]]


@pytest.mark.parametrize("bad, error, match", [({"normalization": "inverse"}, ConfigError, "'log' | 'metric' | 'robust'"),
                                               ({"depth_range": [5.0, 1.0]}, InputError, "0 < near < far")])
def test_bad_parameters_are_named(bad, error, match):
    with pytest.raises(error, match=match):
        registry.build("modality", {"name": "depth", **bad})
