"""The contract kit: checks that a registered component honours its interface.

A plugin author runs it over their own components with two lines in a test module:

    from tokcore.testing import contract_test
    test_contract = contract_test(dist="tok-gaze")   # one test per component of tok-gaze

or calls `check_component("quantizer", "vq")` directly. Each check builds the component
from config by name (the class's `example_config` if it has one, else its defaults), runs
it on tiny CPU inputs, and checks shapes, dtypes, finiteness, gradients, the state-dict
round trip and, for quantizers, that indices map back to exactly the same codes.

Used as a pytest plugin (installed with tokcore), it also provides a `tokcore_registry`
fixture: a temporary registry that in-test `register` calls change.
"""

from __future__ import annotations

import copy
from typing import Any, Callable, Iterable

from tokcore import registry
from tokcore.registry import _canonical
from tokcore.registry.names import did_you_mean

__all__ = ["check_component", "contract_cases", "contract_test", "build_example", "ContractError"]


class ContractError(AssertionError):
    """A component does not honour its interface; the message says which rule and how."""


def _require(ok: bool, what: str, message: str) -> None:
    if not ok:
        raise ContractError(f"{what}: {message}")


def build_example(kind: str, name: str) -> Any:
    """The component built from its `example_config` (or its defaults)."""
    cls = registry.get(kind, name)
    example = getattr(cls, "example_config", {})
    example = example() if callable(example) else copy.deepcopy(example)  # a callable may write files
    return registry.build(kind, {"name": name, **example})


def contract_cases(dist: str | None = None, kinds: Iterable[str] | None = None) -> list[tuple[str, str]]:
    """(kind, name) of every registered component, or those of one distribution.

    Raises ContractError when there is none: a contract run that checks nothing (a renamed
    plugin whose `dist` was not renamed, a distribution that is not installed) must not pass.
    """
    wanted = {registry.normalize_kind(k) for k in kinds} if kinds else set(registry.KINDS)
    reg = registry.current()
    cases = []
    for e in reg.entries():
        if e.kind in wanted and (dist is None or _canonical(e.provider.dist) == _canonical(dist)):
            unique = reg.list(e.kind).count(e.name) == 1
            cases.append((e.kind, e.name if unique else e.qualified_name))
    if not cases:
        raise ContractError(_no_cases(reg, dist, wanted))
    return sorted(cases)


def _no_cases(reg: registry.Registry, dist: str | None, wanted: set[str]) -> str:
    """Why there is nothing to check, and what would be."""
    what = " or ".join(registry.plural(k) for k in registry.KINDS if k in wanted)
    if dist is None:
        return f"no {what} are registered: nothing to check (tokcore plugins)"
    plugins = {_canonical(p.dist): p for p in reg.plugins()}
    p = plugins.get(_canonical(dist))
    if p is not None and not p.enabled:
        return f"distribution '{dist}' is {p.status}: {p.reason}; its components cannot be checked"
    if p is not None:
        return f"distribution '{dist}' registers no {what}: nothing to check (tokcore plugins)"
    names = sorted(p.dist for p in reg.plugins())
    close = did_you_mean(dist, names)
    hint = f"did you mean '{close}'? " if close else ""
    return (f"no installed distribution '{dist}' registers components, so there is nothing to check; {hint}"
            "install it (pip install -e .), or give `dist` the name in its pyproject.toml ([project] name); "
            f"installed: {', '.join(names) or 'none'}")


def contract_test(dist: str | None = None, kinds: Iterable[str] | None = None) -> Callable:
    """A pytest test parametrized over `contract_cases(dist, kinds)`; when there is nothing
    to check, one test that fails saying why (pytest would skip an empty parametrization)."""
    import pytest

    try:
        cases = contract_cases(dist, kinds)
    except ContractError as err:
        reason = str(err)

        def test_contract() -> None:
            raise ContractError(reason)

        return test_contract

    @pytest.mark.parametrize("kind,name", cases, ids=[f"{k}:{n}" for k, n in cases])
    def test_contract(kind: str, name: str) -> None:
        check_component(kind, name)

    return test_contract


def check_component(kind: str, name: str) -> None:
    """Run the contract for one registered component; raises ContractError on a breach."""
    import torch

    kind = registry.normalize_kind(kind)
    torch.manual_seed(0)
    check = _CHECKS[kind]
    check(f"{kind} '{name}'", kind, name)


# -- per-kind checks ---------------------------------------------------------------------------
def _state_round_trip(what: str, kind: str, name: str, module: Any, run: Callable[[Any], Any]) -> None:
    """A fresh instance loaded with `module`'s state dict gives the same outputs in eval mode."""
    import torch

    module.eval()
    other = build_example(kind, name)
    missing = other.load_state_dict(module.state_dict(), strict=True)
    _require(not missing.missing_keys and not missing.unexpected_keys, what, f"state dict mismatch {missing}")
    other.eval()
    with torch.no_grad():
        a, b = run(module), run(other)
    same = torch.equal(a, b) if isinstance(a, torch.Tensor) else a == b
    _require(same, what, "a fresh instance loaded with its state_dict gives different outputs")


def _grads_reach(what: str, module: Any, inputs: list[Any]) -> None:
    has_params = any(p.requires_grad for p in module.parameters())
    got = [p.grad is not None and bool(p.grad.abs().sum() > 0) for p in module.parameters() if p.requires_grad]
    got += [t.grad is not None and bool(t.grad.abs().sum() > 0) for t in inputs if getattr(t, "requires_grad", False)]
    _require(any(got) or not (has_params or inputs), what, "no gradient reached its parameters or inputs")


def _check_encoder(what: str, kind: str, name: str) -> None:
    import torch

    from tokcore.interfaces import DiscreteEncoder, Encoder

    enc = build_example(kind, name)
    _require(isinstance(enc, Encoder), what, "is not a tokcore.Encoder")
    if isinstance(enc, DiscreteEncoder):
        return _check_discrete_encoder(what, kind, name, enc)
    _require(isinstance(getattr(enc, "out_dim", None), int), what, "must set an int `out_dim`")
    enc.train()
    x = enc.example_input(2)
    z = enc(x)
    grid = tuple(enc.token_grid(tuple(x.shape[1:])))
    _require(tuple(z.shape) == (2, *grid, enc.out_dim), what,
             f"output shape {tuple(z.shape)} != (B, *token_grid {grid}, out_dim {enc.out_dim})")
    _require(z.is_floating_point() and bool(torch.isfinite(z).all()), what, "output must be finite floats")
    z.float().square().mean().backward()
    _grads_reach(what, enc, [])
    _state_round_trip(what, kind, name, enc, lambda m: m(x))


def _check_decoder(what: str, kind: str, name: str) -> None:
    import torch

    from tokcore.interfaces import Decoder, DiscreteDecoder

    dec = build_example(kind, name)
    _require(isinstance(dec, Decoder), what, "is not a tokcore.Decoder")
    if isinstance(dec, DiscreteDecoder):
        return _check_discrete_decoder(what, kind, name, dec)
    _require(isinstance(getattr(dec, "in_dim", None), int), what, "must set an int `in_dim`")
    dec.train()
    z = dec.example_input(2).requires_grad_(True)
    _require(z.shape[0] == 2 and z.shape[-1] == dec.in_dim, what,
             f"example_input shape {tuple(z.shape)} must be (B, *grid, in_dim={dec.in_dim})")
    cond = dec.example_cond(z)
    out = dec(z, **cond)
    _require(out.shape[0] == 2 and bool(torch.isfinite(out).all()), what, "output must be finite with batch first")
    out.float().square().mean().backward()
    _grads_reach(what, dec, [z])
    zd = z.detach()
    _state_round_trip(what, kind, name, dec, lambda m: m(zd, **cond))


def _check_discrete_encoder(what: str, kind: str, name: str, enc: Any) -> None:
    """Tokens with int64 indices in range, a boolean mask and offsets of matching shapes, at
    most the token grid long; the state (a vocabulary) survives the state-dict round trip."""
    import torch

    from tokcore.interfaces import Tokens

    _require(isinstance(enc.codebook_size, int) and enc.codebook_size > 0, what, "codebook_size must be a positive int")
    x = enc.example_input(2)
    t = enc(x)
    _require(isinstance(t, Tokens) and t.indices is not None, what, "forward must return Tokens with indices")
    idx = t.indices
    _require(idx.dtype == torch.int64 and idx.shape[0] == 2, what, "indices must be int64 with batch first")
    grid = tuple(enc.token_grid(()))
    lead = idx.shape[1:idx.dim() - len(enc.index_shape)]
    _require(len(lead) == len(grid) and all(n <= g for n, g in zip(lead, grid)), what,
             f"indices grid {tuple(lead)} exceeds token_grid {grid}")
    _require(bool((idx >= 0).all() and (idx < enc.codebook_size).all()), what, "indices out of [0, codebook_size)")
    if t.mask is not None:
        _require(t.mask.dtype == torch.bool and t.mask.shape == idx.shape[:1 + len(lead)], what,
                 "mask must be bool of shape (B, *grid)")
    if t.offsets is not None:
        _require(tuple(t.offsets.shape) == (*idx.shape[:1 + len(lead)], 2), what, "offsets must be (B, *grid, 2)")
    _state_round_trip(what, kind, name, enc, lambda m: m(x).indices)


def _check_discrete_decoder(what: str, kind: str, name: str, dec: Any) -> None:
    import torch

    idx = dec.example_input(2)
    _require(idx.dtype == torch.int64 and idx.shape[0] == 2, what, "example_input must be int64 indices, batch first")
    mask = torch.ones(idx.shape[:2], dtype=torch.bool)
    out = dec(idx, mask=mask)
    _require(len(out) == 2, what, "output must hold one item per sample")
    _state_round_trip(what, kind, name, dec, lambda m: m(idx, mask=mask))


def _check_quantizer(what: str, kind: str, name: str) -> None:
    import torch

    from tokcore.interfaces import Quantizer, QuantizerOutput

    q = build_example(kind, name)
    _require(isinstance(q, Quantizer), what, "is not a tokcore.Quantizer")
    _require(isinstance(getattr(q, "dim", None), int), what, "must set an int `dim`")
    _require(q.codebook_size is None or q.codebook_size > 0, what, "codebook_size must be positive or None")
    q.train()
    z = torch.randn(3, 7, q.dim, requires_grad=True)
    out = q(z)
    _require(isinstance(out, QuantizerOutput), what, "forward must return a QuantizerOutput")
    _require(out.quantized.shape == z.shape and out.quantized.dtype == z.dtype, what,
             f"quantized {tuple(out.quantized.shape)} {out.quantized.dtype} must match input {tuple(z.shape)} {z.dtype}")
    for key, value in out.losses.items():
        _require(value.dim() == 0 and bool(torch.isfinite(value)), what, f"loss '{key}' must be a finite scalar")
    total = out.quantized.square().mean() + sum(out.losses.values(), torch.zeros(()))
    total.backward()
    _require(z.grad is not None and bool(z.grad.abs().sum() > 0), what,
             "no gradient reaches the encoder (straight-through estimator missing?)")

    q.eval()
    before = {k: v.clone() for k, v in q.state_dict().items()}
    with torch.no_grad():
        ev = q(z.detach())
    _require(all(torch.equal(before[k], v) for k, v in q.state_dict().items()), what,
             "eval-mode forward changed the quantizer's state; update codebooks only when training")
    if q.codebook_size is None:
        _require(ev.indices is None, what, "a continuous quantizer (codebook_size None) returns indices=None")
    else:
        idx = ev.indices
        _require(idx is not None and idx.dtype == torch.int64, what, "indices must be int64")
        _require(tuple(idx.shape) == (*z.shape[:-1], *q.index_shape), what,
                 f"indices shape {tuple(idx.shape)} != (..., *index_shape {tuple(q.index_shape)})")
        _require(bool((idx >= 0).all() and (idx < q.codebook_size).all()), what, "indices out of [0, codebook_size)")
        with torch.no_grad():
            codes = q.indices_to_codes(idx)
        _require(torch.equal(codes, ev.quantized), what,
                 "indices_to_codes(indices) differs from the quantized output in eval mode")
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            low = q(z.detach())
        _require(torch.equal(low.indices, idx), what, "indices change under bf16 autocast; keep the math in fp32")
    zd = z.detach()
    _state_round_trip(what, kind, name, q, lambda m: m(zd).quantized)


def _check_loss(what: str, kind: str, name: str) -> None:
    import torch

    from tokcore.interfaces import Loss, LossOutput

    loss = build_example(kind, name)
    _require(isinstance(loss, Loss), what, "is not a tokcore.Loss")
    pred, target = loss.example_input(2)
    pred = pred.clone().requires_grad_(True)
    out = loss(pred, target)
    _require(isinstance(out, LossOutput), what, "forward must return a LossOutput")
    _require(out.loss.dim() == 0 and bool(torch.isfinite(out.loss)), what, "loss must be a finite scalar")
    out.loss.backward()
    _require(pred.grad is not None and bool(torch.isfinite(pred.grad).all()), what, "no finite gradient w.r.t. pred")
    mask = torch.zeros(pred.shape[:2], dtype=torch.bool)
    mask[:, : max(1, pred.shape[1] // 2)] = True
    masked = loss(pred.detach(), target, mask)
    _require(bool(torch.isfinite(masked.loss)), what, "a (B, T)-shaped mask gives a non-finite loss")


def _check_modality(what: str, kind: str, name: str) -> None:
    import torch

    from tokcore.errors import InputError
    from tokcore.interfaces.modality import Modality, denormalize_with, normalize_with

    m = build_example(kind, name)
    _require(isinstance(m, Modality), what, "is not a tokcore.Modality")
    x = m.example(2)
    valid = m.validate(x, sample="example")
    side = m.side_info(valid)  # a per-sample normalization's statistics, carried as tokens carry them
    n = normalize_with(m, valid, side)
    again = normalize_with(m, m.validate(denormalize_with(m, n, side), sample="decoded"), side)
    if isinstance(n, torch.Tensor):
        _require(bool(torch.isfinite(n).all()), what, "normalize must give finite values (invalid elements filled)")
        same = again.shape == n.shape and torch.allclose(again, n, rtol=1e-4, atol=1e-4)
    else:
        same = again == n
    _require(same, what, "normalize(denormalize(y)) must give back y")
    rebuilt = registry.build("modality", m.config())
    _require(rebuilt.config() == m.config(), what, "config() does not rebuild the same modality")
    for bad, why in m.invalid_examples(x):
        try:
            m.validate(bad, sample="bad-sample")
        except InputError as err:
            _require("bad-sample" in str(err), what, f"the InputError for {why} must name the sample: {err}")
        else:
            raise ContractError(f"{what}: validate accepted {why}")


def _check_dataset(what: str, kind: str, name: str) -> None:
    ds = build_example(kind, name)
    _require(len(ds) > 0, what, "example dataset is empty")
    keys = []
    for i in range(min(3, len(ds))):
        sample = ds[i]
        _require(isinstance(sample, dict) and "input" in sample and isinstance(sample.get("key"), str), what,
                 "samples must be dicts with a str 'key' and an 'input'")
        _require(ds.key(i) == sample["key"], what, "key(i) must equal dataset[i]['key']")
        keys.append(sample["key"])
    _require(len(set(keys)) == len(keys), what, "sample keys must be unique")


def _check_trainer(what: str, kind: str, name: str) -> None:
    from tokcore.interfaces import Trainer

    trainer = build_example(kind, name)
    _require(isinstance(trainer, Trainer), what, "is not a tokcore.Trainer")
    other = build_example(kind, name)
    other.load_state_dict(trainer.state_dict(), strict=True)


def _check_baseline(what: str, kind: str, name: str) -> None:
    """On the example batch of every registered modality it codes: the decoded batch has the
    input's shape, and no sample spends more than the budget (a generous one: 2 bits per
    element) or, at 1 bit per sample, the codec either fits or says BudgetTooSmall."""
    import math

    import torch

    from tokcore.interfaces.evaluation import Baseline, BudgetTooSmall, Coded

    b = build_example(kind, name)
    _require(isinstance(b, Baseline), what, "is not a tokcore Baseline")
    coded_any = False
    for modality_name in registry.list("modality"):
        try:
            m = registry.build("modality", {"name": modality_name})
        except Exception:  # a modality that needs parameters has no example to code
            continue
        if not b.applies_to(m):
            continue
        x = m.validate(m.example(4), sample="example")
        b.fit(x, m)
        budget = 2.0 * math.prod(x.shape[1:])
        out = b.code(x, budget, m)
        _require(isinstance(out, Coded), what, "code must return a Coded")
        _require(tuple(out.recon.shape) == tuple(x.shape), what,
                 f"decoded {modality_name} batch has shape {tuple(out.recon.shape)}, the input {tuple(x.shape)}")
        _require(out.bits.shape == (len(x),) and bool((out.bits <= budget + 1e-6).all()), what,
                 f"must spend at most the budget ({budget:g} bits per sample), spent {out.bits.tolist()}")
        _require(bool(torch.isfinite(torch.as_tensor(out.recon, dtype=torch.float64)).all()), what,
                 "decoded values must be finite")
        try:
            small = b.code(x, 1.0, m)
            _require(bool((small.bits <= 1.0).all()), what, "at 1 bit per sample it spent more")
        except BudgetTooSmall:
            pass
        coded_any = True
    _require(coded_any, what, "codes none of the registered modalities (applies_to is False for all)")


def _check_importer(what: str, kind: str, name: str) -> None:
    import tempfile
    from pathlib import Path

    from tokcore.errors import TokcoreError
    from tokcore.run.importing import Importer

    importer = build_example(kind, name)
    _require(isinstance(importer, Importer), what, "is not a tokcore Importer")
    with tempfile.TemporaryDirectory() as empty:  # nothing to read: an error that says so, not a crash
        try:
            importer.read(Path(empty))
        except TokcoreError:
            return
        except Exception as err:
            _require(False, what, f"an empty folder raised {type(err).__name__} ({err}), not a TokcoreError")
        _require(False, what, "reading an empty folder gave a result; it must raise a TokcoreError")


_CHECKS: dict[str, Callable[[str, str, str], None]] = {
    "encoder": _check_encoder,
    "decoder": _check_decoder,
    "quantizer": _check_quantizer,
    "loss": _check_loss,
    "modality": _check_modality,
    "dataset": _check_dataset,
    "trainer": _check_trainer,
    "baseline": _check_baseline,
    "importer": _check_importer,
}
