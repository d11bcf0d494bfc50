"""Per-sample side information: a normalization computed from each sample (depth's robust
normalization) is undone at decode time from statistics carried with the tokens, in memory
(`Tokens.side`), through the tokenize job's metadata and back in `tokcore decode`."""

import pytest
import torch

from tokcore.errors import TokcoreError
from tokcore.interfaces.modality import SIDE_KEY, Modality
from tokcore.tokenizer import build_tokenizer
from tokcore.tokens.decode import stored_side
from tokcore.batch import Collate, Prepare


class PeakScaled(Modality):
    """Test modality: (T, 2) tracks divided by their own peak magnitude."""

    name = "peak_scaled"
    layout = "TC"
    channels = 2

    def side_info(self, x, batched=True):
        return {"peak": x.abs().amax(dim=(-2, -1)).clamp_min(1e-6)}

    def normalize(self, x, batched=True, side=None):
        side = side if side is not None else self.side_info(x, batched)
        return x / side["peak"].reshape(-1, 1, 1)

    def denormalize(self, x, batched=True, side=None):
        if side is None:
            raise ValueError("needs the peak")
        return x * side["peak"].reshape(-1, 1, 1)

    def example(self, batch_size=2):
        return torch.rand(batch_size, 8, 2)


def tokenizer():
    conv = {"base_channels": 8, "channel_mult": [1, 2], "num_res_blocks": 1, "mid_attention": False}
    model = {"encoder": {"name": "conv1d", "in_channels": 2, "out_dim": 3, **conv},
             "quantizer": {"name": "fsq", "levels": [5, 5, 5]},
             "decoder": {"name": "conv1d", "in_dim": 3, "out_channels": 2, **conv}}
    tok = build_tokenizer(model)
    tok.modality = PeakScaled()
    return tok


def test_tokens_carry_the_side_information_to_decode():
    tok = tokenizer()
    x = torch.rand(3, 16, 2, generator=torch.Generator().manual_seed(0)) + 0.1
    near, far = tok.encode(x), tok.encode(4 * x)
    assert torch.equal(near.indices, far.indices)  # the scale is not in the tokens...
    assert torch.allclose(far.side["peak"], 4 * near.side["peak"])
    assert torch.allclose(tok.decode(far), 4 * tok.decode(near), rtol=1e-5)  # ...but comes back
    with pytest.raises(ValueError, match="needs the peak"):
        tok.decode(near.indices)


def test_the_tokenize_job_writes_it_into_the_metadata_and_decode_reads_it_back():
    x = torch.tensor([[[1.0, -2.0]] * 4, [[0.5, 0.25]] * 4])
    samples = [{"index": i, "key": f"s{i}", "input": x[i], "meta": {"source": "test"}} for i in range(2)]
    group = Prepare(PeakScaled())(samples)["groups"][0]
    metas = group["meta"]
    assert metas[0] == {"source": "test", SIDE_KEY: {"peak": 2.0}} and metas[1][SIDE_KEY] == {"peak": 0.5}
    assert torch.allclose(group["input"][0, 0], torch.tensor([0.5, -1.0]))
    assert torch.equal(stored_side(metas)["peak"], torch.tensor([2.0, 0.5]))
    assert stored_side([{"source": "a"}, {}]) is None
    with pytest.raises(TokcoreError, match="tokenize them again"):
        stored_side([metas[0], {"source": "test"}])


def test_training_batches_carry_it_for_evaluation():
    x = torch.tensor([[[1.0, -2.0]] * 4, [[0.5, 0.25]] * 4])
    batch = Collate(PeakScaled())([{"key": f"s{i}", "input": x[i]} for i in range(2)])
    assert torch.equal(batch["side"]["peak"], torch.tensor([2.0, 0.5]))
    assert torch.allclose(PeakScaled().denormalize(batch["input"], side=batch["side"]), x)
