"""VQ specifics: the search equals brute force, EMA statistics, k-means, dead-code restarts."""

import pytest
import torch
import torch.nn.functional as F

from tokcore.errors import ConfigError
from tokcore.builtins.quantizers import VQ
from tokcore.builtins.quantizers._search import nearest_codes


def brute_force_check(vectors, codebook, indices, *, cosine):
    """The chosen code is a nearest one (ties aside), with distances in float64."""
    v, c = vectors.double(), codebook.double()
    dist = -(v @ c.t()) if cosine else torch.cdist(v, c).square()
    best = dist.min(dim=1).values
    chosen = dist.gather(1, indices.unsqueeze(1)).squeeze(1)
    assert torch.allclose(chosen, best, rtol=1e-5, atol=1e-5)
    agree = (indices == dist.argmin(dim=1)).float().mean()
    assert agree > 0.99  # disagreements only where two codes are equally near


@pytest.mark.parametrize("n", [1, 100, 5000])  # 5000 rows: several chunks for 2048 codes
def test_search_equals_brute_force(n):
    torch.manual_seed(n)
    vectors, codebook = torch.randn(n, 32), torch.randn(2048, 32)
    brute_force_check(vectors, codebook, nearest_codes(vectors, codebook), cosine=False)


@pytest.mark.parametrize("options", [
    {},
    {"cosine": True},
    {"codebook_dim": 5},
    {"heads": 4},
    {"heads": 2, "codebook_dim": 3, "cosine": True},
])
def test_vq_indices_equal_brute_force(options):
    torch.manual_seed(0)
    q = VQ(dim=12, codebook_size=256, kmeans_init=False, **options).eval()
    z = torch.randn(7, 50, 12)
    out = q(z)
    vectors = q.project_in(z.reshape(-1, 12)).reshape(-1, q.codebook_dim)
    if q.cosine:
        vectors = F.normalize(vectors, dim=1)
    brute_force_check(vectors.detach(), q.codebook(), out.indices.reshape(-1), cosine=q.cosine)


def test_ema_update_matches_its_definition():
    torch.manual_seed(0)
    q = VQ(dim=4, codebook_size=8, kmeans_init=False, decay=0.5, restart_dead_codes=False)
    size0, sum0 = q.cluster_size.clone(), q.embed_sum.clone()
    z = torch.randn(64, 4)
    idx = q(z).indices
    one_hot = F.one_hot(idx, 8).float()  # fine in a test: tiny
    assert torch.allclose(q.cluster_size, 0.5 * size0 + 0.5 * one_hot.sum(0))
    assert torch.allclose(q.embed_sum, 0.5 * sum0 + 0.5 * one_hot.t() @ z, atol=1e-6)
    assert torch.allclose(q.embed, q.embed_sum / q.cluster_size.unsqueeze(1), atol=1e-6)


def test_kmeans_initialization_runs_once_on_the_first_training_batch():
    torch.manual_seed(0)
    centres = torch.randn(4, 8) * 10
    data = (centres.repeat(100, 1) + 0.01 * torch.randn(400, 8))
    q = VQ(dim=8, codebook_size=4, kmeans_iters=20)
    assert not bool(q.initialized)
    q.eval()(data)
    assert not bool(q.initialized)  # eval never initializes
    q.train()(data)
    assert bool(q.initialized)
    # every true centre has a code close to it
    assert torch.cdist(centres, q.embed).min(dim=1).values.max() < 0.1


def test_dead_codes_are_restarted_with_encoder_outputs():
    torch.manual_seed(0)
    q = VQ(dim=8, codebook_size=16, kmeans_init=False, dead_after_steps=3)
    q.embed.mul_(100.0)  # codes far away from the data: all but a few never win
    q.embed_sum.mul_(100.0)
    data = torch.randn(256, 8)
    dead_seen = []
    for _ in range(4):
        dead_seen.append(int(q(data).stats["dead_codes"]))
    assert max(dead_seen) > 0
    assert q.embed.norm(dim=1).max() < 20  # restarted codes now sit among the data
    q.eval()
    assert q(data).stats["usage"] > 0.9


def test_restart_reach_splits_the_busy_code():
    torch.manual_seed(0)
    q = VQ(dim=8, codebook_size=16, kmeans_init=False, dead_after_steps=1, decay=0.0, restart_reach=0.25)
    q.embed.mul_(100.0)  # every code far away but code 0, which takes all the data
    q.embed[0] = 0.0
    q.embed_sum.copy_(q.embed)
    data = torch.randn(64, 8) + 3.0
    assert int(q(data).stats["dead_codes"]) == 15
    busy = q.embed[0]
    torch.testing.assert_close(busy, data.mean(0))  # decay 0: the mean of its vectors
    # each restarted code lies a quarter of the way from the busy code to one of the vectors
    drawn = busy + (q.embed[1:] - busy) / 0.25
    assert torch.cdist(drawn, data).min(dim=1).values.max() < 1e-2  # data rows lie ~4 apart
    q.eval()
    assert q(data).stats["usage"] > 0.9  # the split codes share the busy code's vectors at once
    with pytest.raises(ConfigError, match="restart_reach"):
        VQ(dim=8, codebook_size=16, restart_reach=0.0)


def test_without_restarts_dead_codes_stay_dead():
    torch.manual_seed(0)
    q = VQ(dim=8, codebook_size=16, kmeans_init=False, dead_after_steps=3, restart_dead_codes=False)
    q.embed.mul_(100.0)
    q.embed_sum.mul_(100.0)
    data = torch.randn(256, 8)
    for _ in range(4):
        out = q(data)
    assert out.stats["dead_codes"] > 8
    assert out.stats["usage"] < 0.5


def test_codebook_loss_mode_trains_the_codebook_by_gradient():
    torch.manual_seed(0)
    q = VQ(dim=8, codebook_size=16, codebook_learning="loss", kmeans_init=False)
    out = q(torch.randn(64, 8))
    assert set(out.losses) == {"commitment", "codebook"}
    out.losses["codebook"].backward()
    assert q.embed.grad is not None and q.embed.grad.abs().sum() > 0
