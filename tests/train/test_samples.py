"""`tokcore.train.samples`: held-out inputs beside their round trip, written by the modality."""

import numpy as np
import torch

from tokcore.tokenizer import build_tokenizer
from tokcore.train.samples import first_samples, samples_path, write_samples

CONV = {"base_channels": 4, "channel_mult": [1], "num_res_blocks": 1, "mid_attention": False}


def tokenizer():
    torch.manual_seed(0)
    return build_tokenizer({"encoder": {"name": "conv1d", "in_channels": 2, "out_dim": 3, **CONV},
                            "quantizer": {"name": "fsq", "levels": [5, 5, 5]},
                            "decoder": {"name": "conv1d", "in_dim": 3, "out_channels": 2, **CONV}})


class Walks(torch.utils.data.Dataset):
    def __init__(self):
        self.x = torch.rand(10, 16, 2)

    def __len__(self):
        return 10

    def __getitem__(self, i):
        if i == 2:
            raise OSError("truncated")
        return {"key": f"w{i}", "input": self.x[i] if i != 5 else self.x[i, :8]}


def test_first_samples_are_the_validated_largest_group():
    ds = Walks()
    raw = first_samples(tokenizer(), ds, n=8)
    assert torch.equal(raw, ds.x[[0, 1, 3, 4, 6, 7]])  # 2 cannot load, 5 is shorter


def test_write_samples_with_the_array_modality(tmp_path):
    tok = tokenizer()
    raw = Walks().x[:4]
    path = samples_path(tmp_path, 7)
    files = write_samples(tok, raw, path)
    assert files == [tmp_path / "samples" / "step-7.npz"]
    data = np.load(files[0])
    assert np.array_equal(data["target"], raw.numpy())
    assert np.array_equal(data["recon"], tok.decode(tok.encode(raw)).numpy())
    assert write_samples(tok, None, path) == []
