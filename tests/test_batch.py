"""`tokcore.batch`: the one preparation of samples that training (`Collate`), tokenize
(`Prepare`) and `Tokenizer.encode` (`prepare_batch`) share."""

from typing import Any

import numpy as np
import pytest
import torch

from tokcore.batch import Collate, GuardedDataset, Prepare, prepare_batch, prepare_samples
from tokcore.errors import InputError
from tokcore.interfaces.modality import SIDE_KEY, Modality
from tokcore.tokenizer import build_modality


class Track(Modality):
    """(T, 2) tracks in [0, 1], counting its validate calls."""

    name = "track"
    layout = "TC"
    channels = 2

    def __init__(self) -> None:
        super().__init__(mean=0.5, std=0.5, value_range=[0.0, 1.0])
        self.calls: list[bool] = []

    def validate(self, x: Any, *, sample: str = "input", batched: bool = True) -> torch.Tensor:
        self.calls.append(batched)
        return super().validate(x, sample=sample, batched=batched)

    def example(self, batch_size: int = 2) -> torch.Tensor:
        return torch.rand(batch_size, 8, 2)


class Words(Modality):
    """Strings, validated as a list."""

    name = "words"

    def validate(self, x: Any, *, sample: str = "input", batched: bool = True) -> Any:
        for s in (x if batched else [x]):
            if not isinstance(s, str) or not s:
                raise InputError(f"{sample}: needs a non-empty string")
        return list(x) if batched else x

    def normalize(self, x: Any, batched: bool = True) -> Any:
        return [s.lower() for s in x]

    def example(self, batch_size: int = 2) -> list[str]:
        return ["a"] * batch_size


def sample(i: int, x: Any, **meta: Any) -> dict[str, Any]:
    return {"index": i, "key": f"k{i}", "input": x, "meta": meta}


def test_a_clean_batch_is_validated_in_one_call_and_normalized():
    m = Track()
    x = torch.rand(4, 8, 2)
    groups, failed = prepare_samples(m, [sample(i, x[i]) for i in range(4)])
    assert failed == [] and m.calls == [True] and len(groups) == 1
    g = groups[0]
    assert g.indices == [0, 1, 2, 3] and g.keys == ["k0", "k1", "k2", "k3"] and g.shape == (8, 2)
    assert torch.equal(g.raw, x) and torch.equal(g.input, (x - 0.5) / 0.5)


def test_only_a_failing_group_is_checked_sample_by_sample():
    m = Track()
    x = torch.rand(3, 8, 2)
    x[1, 0, 0] = 7.0
    groups, failed = prepare_samples(m, [sample(i, x[i]) for i in range(3)])
    assert m.calls == [True, False, False, False]
    assert [f["index"] for f in failed] == [1] and failed[0]["key"] == "k1"
    assert failed[0]["error"].startswith("k1: track values span")
    assert groups[0].indices == [0, 2] and torch.equal(groups[0].raw, x[[0, 2]])


def test_loading_errors_and_inputs_that_are_not_arrays_become_failure_records():
    class Broken:
        def __len__(self):
            return 2

        def __getitem__(self, i):
            if i == 1:
                raise OSError("truncated")
            return {"key": "ok", "input": np.zeros((8, 2), np.float32)}

    guarded = GuardedDataset(Broken())
    samples = [guarded[0], guarded[1], sample(2, {"not": "an array"})]
    groups, failed = prepare_samples(build_modality(None), samples)
    assert [len(g) for g in groups] == [1]
    assert [(f["index"], f["key"]) for f in failed] == [(1, "#1"), (2, "k2")]
    assert "cannot load: OSError: truncated" in failed[0]["error"] and "k2: invalid input" in failed[1]["error"]


def test_mixed_shapes_tokenize_encodes_each_group():
    m = build_modality(None)
    samples = [sample(0, torch.ones(8, 2)), sample(1, torch.ones(4, 2)), sample(2, torch.ones(8, 2), source="x")]
    out = Prepare(m)(samples)
    assert out["failed"] == []
    assert [g["indices"] for g in out["groups"]] == [[0, 2], [1]]
    assert [tuple(g["input"].shape) for g in out["groups"]] == [(2, 8, 2), (1, 4, 2)]
    assert out["groups"][0]["meta"] == [{}, {"source": "x"}]


def test_mixed_shapes_training_takes_the_largest_group_and_says_why_the_rest_failed():
    m = build_modality(None)
    samples = [sample(0, torch.ones(4, 2)), sample(1, torch.ones(8, 2)), sample(2, torch.ones(8, 2))]
    batch = Collate(m)(samples)
    assert batch["keys"] == ["k1", "k2"] and batch["input"].shape == (2, 8, 2)
    assert [f["index"] for f in batch["failed"]] == [0]
    assert batch["failed"][0]["error"] == ("k0: shape (4, 2) differs from the batch's (8, 2); training stacks one "
                                           "shape per batch: resize or crop samples to one shape")
    tie = Collate(m)([sample(0, torch.ones(4, 2)), sample(1, torch.ones(8, 2))])
    assert tie["keys"] == ["k0"]  # of equally large groups, the first
    nothing = Collate(m)([{"index": 0, "key": "k0", "error": "k0: cannot load"}])
    assert nothing["input"] is None and nothing["keys"] == [] and len(nothing["failed"]) == 1


def test_mixed_dtypes_of_one_shape_are_validated_one_by_one_and_stacked_as_floats():
    m = Track()
    groups, failed = prepare_samples(m, [sample(0, torch.zeros(8, 2, dtype=torch.uint8)), sample(1, torch.rand(8, 2))])
    assert failed == [] and m.calls == [False, False]
    assert groups[0].raw.dtype == torch.float32 and groups[0].indices == [0, 1]


def test_non_array_inputs_are_one_group_kept_as_a_list():
    out = Prepare(Words())([sample(0, "Hello"), sample(1, ""), sample(2, "World")])
    assert [g["input"] for g in out["groups"]] == [["hello", "world"]]
    assert out["failed"] == [{"index": 1, "key": "k1", "error": "k1: needs a non-empty string"}]
    batch = Collate(Words())([sample(0, "A"), sample(1, "B")])
    assert batch["raw"] == ["A", "B"] and batch["input"] == ["a", "b"] and batch["mask"] is None


def test_side_information_goes_into_tokenize_metadata_and_training_batches():
    class Peak(Modality):
        name, layout, channels = "peak", "TC", 2

        def side_info(self, x, batched=True):
            return {"peak": x.abs().amax(dim=(-2, -1))}

        def normalize(self, x, batched=True, side=None):
            return x / side["peak"].reshape(-1, 1, 1)

        def example(self, batch_size=2):
            return torch.rand(batch_size, 8, 2)

    x = torch.tensor([[[1.0, -2.0]] * 4, [[0.5, 0.25]] * 4])
    out = Prepare(Peak())([sample(i, x[i], source="t") for i in range(2)])
    assert [m[SIDE_KEY] for m in out["groups"][0]["meta"]] == [{"peak": 2.0}, {"peak": 0.5}]
    assert torch.equal(Collate(Peak())([sample(i, x[i]) for i in range(2)])["side"]["peak"], torch.tensor([2.0, 0.5]))


def test_prepare_batch_is_what_tokenizer_encode_uses():
    m = Track()
    x = torch.rand(2, 8, 2)
    p = prepare_batch(m, x)
    assert torch.equal(p.raw, x) and torch.equal(p.input, (x - 0.5) / 0.5) and p.side is None
    with pytest.raises(InputError, match=r"^batch: track input must have shape \(B, T, C\)"):
        prepare_batch(m, x[0])
