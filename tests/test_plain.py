"""`plain`: the one conversion to JSON/YAML data (config defaults, modality records, token-store metadata)."""

import json
from pathlib import Path

import numpy as np
import torch

from tokcore.registry.params import plain


def test_plain_gives_json_data():
    value = {"shape": (2, 3), "scale": np.float32(0.5), "ids": np.arange(3), "t": torch.tensor([[1.0, 2.0]]),
             "n": torch.tensor(4), 7: [None, True, "x"], "source": Path("/data/a.npy"), "flag": np.bool_(True)}
    out = plain(value)
    assert out == {"shape": [2, 3], "scale": 0.5, "ids": [0, 1, 2], "t": [[1.0, 2.0]], "n": 4, "7": [None, True, "x"],
                   "source": "/data/a.npy", "flag": True}
    assert json.loads(json.dumps(out)) == out
    assert type(out["scale"]) is float and type(out["n"]) is int and type(out["flag"]) is bool
