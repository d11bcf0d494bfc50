"""`tokcore eval`: a split through tokenize -> token store -> decode, measured against the
inputs beside compared tokenizers and baseline codecs, on the very same samples.

1. The split is tokenized by `tokcore tokenize`'s job into `<output>/tokens` (sharded over
   ranks, resumable, never redone once finished).
2. The store's samples are cut into chunks of `chunk_samples` in store order; rank r takes
   the chunks c with c % world == r. For each chunk it reads the raw inputs back from the
   dataset by the index the store recorded, decodes the stored tokens (the tokens a user of
   the store gets), codes the same inputs with every compared run and baseline, and adds the
   modality's metric totals, bits, code counts and Fréchet statistics to its state
   (`tokcore.eval.state`), which it saves after each chunk: a killed evaluation resumes at
   its first unfinished chunk. The chunking does not depend on the number of ranks, so one
   process and N give the same sums (up to the order of float64 additions).
3. Rank 0 merges the states and writes `metrics.json`, `report.md` and `report.html`.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from tokcore.errors import ConfigError, InputError, TokcoreError
from tokcore.eval.state import EvalState
from tokcore.interfaces import Tokens
from tokcore.interfaces.evaluation import Baseline, BudgetTooSmall
from tokcore.run import Checkpoint, load_tokenizer
from tokcore.runtime.io import atomic_write_json
from tokcore.runtime.launch import launched, spawn
from tokcore.runtime.paths import output_folder
from tokcore.runtime.progress import Progress
from tokcore.runtime.threads import ThreadChoice, choose_threads, local_ranks, using
from tokcore.tokens.decode import stored_side
from tokcore.tokens.job import data_config
from tokcore.tokens.store import TokenStore, sha256_file
from tokcore.tokens.tokenize import Options as TokenizeOptions
from tokcore.tokens.tokenize import frame_count, sample_size, tokenize

PLAN = "eval.json"
METRICS = "metrics.json"
PARTS = "parts"
TOKENIZER = "tokenizer"


@dataclass
class EvalOptions:
    """How to evaluate (none of this changes the figures, except `curve`, `fit_samples` and
    `seed`, which are recorded with them).

    Args:
        batch_size: samples per decoder call.
        chunk_samples: samples between two saves of a rank's state (what a kill can lose).
        pictures: samples shown in the report's pictures, spread over the split.
        curve: multiples of the tokenizer's rate at which baselines are also run, for the
            rate-distortion plot.
        fit_samples: training samples a baseline fits its settings on (spread over the split),
            loaded only for baselines that fit (`Baseline.fits`).
        seed: seeds each chunk's decoding (a diffusion decoder samples noise).
        device: "auto", "cpu" or "cuda".
        threads: torch intra-op threads per process (None: chosen from the idle CPUs).
        progress: show progress bars (rank 0).
    """

    batch_size: int = 32
    chunk_samples: int = 256
    pictures: int = 8
    curve: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0)
    fit_samples: int = 8192
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    progress: bool = True


@dataclass
class EvalPlan:
    """What is evaluated: fixed for the life of an output folder (a resumed run must match)."""

    checkpoint: str
    weights_sha256: str
    split: str
    data: dict[str, Any]
    modality: str
    compare: list[dict[str, str]] = field(default_factory=list)  # {"name", "run", "weights_sha256"}
    baselines: list[str] = field(default_factory=list)
    features: dict[str, str] = field(default_factory=dict)
    curve: list[float] = field(default_factory=list)
    fit_samples: int = 8192
    chunk_samples: int = 256
    pictures: int = 8
    seed: int = 0
    num_tokens: int | list[int] | None = None  # tokens per sample of a variable-length tokenizer (None: the most)


# -- planning ------------------------------------------------------------------------------------------
def _run(path: str | Path, what: str) -> Checkpoint:
    try:
        ckpt = Checkpoint(Path(path).resolve())
        ckpt.meta()
        ckpt.weights()
    except TokcoreError as err:
        raise TokcoreError(f"{what} {path} is not a tokcore run ({err}); give a run directory written by "
                           "`tokcore train` or `tokcore import`") from None
    return ckpt


def _modality_name(ckpt: Checkpoint) -> str:
    return str(ckpt.meta()["modality"]["name"])


def choose_baselines(names: Sequence[str] | None, modality: Any) -> list[str]:
    """The baselines to run: every registered one that codes `modality` (names None), the
    named ones (each must code it), or none (`["none"]`)."""
    from tokcore import registry

    if names is not None and list(names) in (["none"], []):
        return []
    if names is None:
        return [n for n in registry.list("baseline") if registry.build("baseline", {"name": n}).applies_to(modality)]
    chosen = []
    for n in names:
        base = registry.build("baseline", {"name": n})
        if not base.applies_to(modality):
            raise TokcoreError(f"baseline '{n}' cannot code '{modality.name}' samples; drop it from --baselines "
                               f"(`tokcore list baselines` shows them all)")
        chosen.append(n)
    return chosen


def make_plan(checkpoint: str | Path, split: str, overrides: Sequence[str], compare: Sequence[str | Path],
              baselines: Sequence[str] | None, features: dict[str, str], opts: EvalOptions) -> EvalPlan:
    from tokcore.tokenizer import build_modality

    ckpt = _run(checkpoint, "--checkpoint")
    modality = _modality_name(ckpt)
    others, names = [], {TOKENIZER}
    for path in compare:
        other = _run(path, "--compare")
        if _modality_name(other) != modality:
            raise TokcoreError(f"--compare {path} tokenizes '{_modality_name(other)}', the checkpoint "
                               f"'{modality}'; compare runs of one modality")
        name = Path(path).resolve().name
        while name in names:
            name = f"{other.path.parent.name}/{name}"
        names.add(name)
        others.append({"name": name, "run": str(other.path), "weights_sha256": sha256_file(other.weights())})
    for name, file in features.items():
        if file and not Path(file).is_file():
            raise InputError(f"--features {name}={file}: no such file; point at the network's weight file")
    data = data_config(ckpt, [*overrides, f"data.split={split}"])
    return EvalPlan(str(ckpt.path), sha256_file(ckpt.weights()), split, data, modality, others,
                    choose_baselines(baselines, build_modality(ckpt.meta()["modality"])),
                    {k: str(Path(v).resolve()) if v else "" for k, v in features.items()}, [float(m) for m in opts.curve],
                    opts.fit_samples, opts.chunk_samples, opts.pictures, opts.seed)


def check_plan(out: Path, plan: EvalPlan) -> None:
    """Record `plan` in `out`, or TokcoreError if `out` holds another evaluation."""
    recorded = out / PLAN
    if recorded.is_file():
        old = json.loads(recorded.read_text(encoding="utf-8"))
        if old != asdict(plan):
            diff = sorted(k for k in asdict(plan) if old.get(k) != asdict(plan)[k])
            raise TokcoreError(f"{out} holds another evaluation (its {', '.join(diff)} differ); choose another "
                               "--output or delete it")
    else:
        output_folder(out)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(recorded, asdict(plan))


# -- one rank ------------------------------------------------------------------------------------------------
def _stack(xs: list[Any]) -> Any:
    return torch.stack(xs) if isinstance(xs[0], Tensor) else list(xs)


def _rows(x: Any) -> list[Any]:
    return list(x.detach().cpu()) if isinstance(x, Tensor) else list(x)


def _cpu(x: Any) -> Any:
    return x.detach().float().cpu() if isinstance(x, Tensor) else x


def token_bits(arr: np.ndarray, codebook_size: int | None) -> float:
    """Bits of one sample's stored tokens: log2(codebook) per index, or the storage bits of
    continuous latents."""
    return arr.size * (math.log2(codebook_size) if codebook_size else arr.dtype.itemsize * 8)


class Evaluator:
    """One rank's share of an evaluation."""

    def __init__(self, plan: EvalPlan, out: Path, opts: EvalOptions, device: torch.device):
        from tokcore import registry

        self.plan, self.out, self.opts = plan, out, opts
        self.store = TokenStore(out / "tokens")
        self.keys = list(self.store)
        self.tok = load_tokenizer(plan.checkpoint, device=device)
        self.modality = self.tok.modality
        self.index_positions = math.prod(self.tok.index_shape or [1]) if self.tok.is_discrete else 1
        self.others = {c["name"]: load_tokenizer(c["run"], device=device) for c in plan.compare}
        self.dataset = registry.build("dataset", plan.data)
        self.baselines: dict[str, Baseline] = {n: registry.build("baseline", {"name": n}) for n in plan.baselines}
        fitting = [b for b in self.baselines.values() if b.fits]
        if fitting:
            train = self.training_samples()
            for b in fitting:
                b.fit(train, self.modality)
        self.extractors = self.modality.feature_extractors({k: Path(v) if v else None for k, v in plan.features.items()})
        n = len(self.keys)
        self.picks = set(np.linspace(0, n - 1, min(plan.pictures, n)).round().astype(int).tolist()) if n else set()

    def training_samples(self) -> Tensor:
        """Up to `fit_samples` raw training samples, spread over the training split (those of
        the most common shape), for baselines to fit on."""
        from tokcore import registry

        data = {**self.plan.data, "split": "train"}
        ds = registry.build("dataset", data)
        if len(ds) == 0:
            raise TokcoreError("the training split is empty; baselines fit their settings on it (use --baselines none)")
        idx = np.unique(np.linspace(0, len(ds) - 1, min(self.plan.fit_samples, len(ds))).round().astype(int))
        xs = [self.modality.validate(ds[int(i)]["input"], sample=f"train sample {i}", batched=False) for i in idx]
        shapes: dict[Any, list[Tensor]] = {}
        for x in xs:
            shapes.setdefault(tuple(x.shape), []).append(x)
        return torch.stack(max(shapes.values(), key=len))

    # -- a chunk ---------------------------------------------------------------------------------------
    def add_chunk(self, state: EvalState, chunk: int) -> None:
        start = chunk * self.plan.chunk_samples
        keys = self.keys[start:start + self.plan.chunk_samples]
        torch.manual_seed(self.plan.seed * 1_000_003 + chunk)  # decoding that samples noise is repeatable
        groups: dict[Any, list[tuple[int, str, Any]]] = {}
        for offset, key in enumerate(keys):
            try:
                raw = self.dataset[self.store.index(key)]["input"]
                x = self.modality.validate(raw, sample=key, batched=False)
            except Exception as err:  # recorded and skipped, never dropped silently
                state.failed.append({"key": key, "error": f"{type(err).__name__}: {err}"})
                continue
            shape = (tuple(x.shape) if isinstance(x, Tensor) else "item", self.store.shape(key))
            groups.setdefault(shape, []).append((start + offset, key, x))
        for items in groups.values():
            for b in range(0, len(items), self.opts.batch_size):
                self.add_batch(state, items[b:b + self.opts.batch_size])

    def add_batch(self, state: EvalState, items: list[tuple[int, str, Any]]) -> None:
        positions, keys, xs = zip(*items)
        target = _stack(list(xs))
        arrays = [self.store[k] for k in keys]
        metas = [self.store.meta(k) for k in keys]
        with torch.inference_mode():
            stacked = torch.from_numpy(np.stack(arrays))
            t = (Tokens(indices=stacked.long()) if self.store.kind == "indices" else Tokens(latents=stacked.float()))
            t.side = stored_side(metas)
            # a clip decoder that pads (Cosmos) gives back the input's frames, as `tokcore decode` does
            layout = self.tok.modality.layout
            recon = _cpu(self.tok.decode(t, frames=frame_count(layout, target), size=sample_size(layout, target)))
        side_bits = 32.0 * len(t.side) if t.side else 0.0  # float32 statistics stored beside the tokens
        bits = [token_bits(a, self.store.codebook_size) + side_bits for a in arrays]
        decoded = {TOKENIZER: recon}
        self.account(state, TOKENIZER, recon, target, bits, arrays)
        for name, other in self.others.items():
            with torch.inference_mode():
                tokens = other.encode(target)
                layout = other.modality.layout
                out = _cpu(other.decode(tokens, frames=frame_count(layout, target), size=sample_size(layout, target)))
            per = self._sample_tokens(tokens, other)
            codebook = other.codebook_size if other.is_discrete else None
            self.account(state, name, out, target, [token_bits(a, codebook) for a in per], per)
            decoded[name] = out
        budget = float(np.mean(bits))
        for name, base in self.baselines.items():
            for m in self.plan.curve:
                try:
                    coded = base.code(target, budget * m, self.modality)
                except BudgetTooSmall:
                    continue
                column = name if m == 1.0 else f"{name}@{m:g}x"
                self.account(state, column, _cpu(coded.recon), target, coded.bits.tolist(), None)
                state.column(column).settings[coded.setting] += len(keys)
                if m == 1.0:
                    decoded[name] = _cpu(coded.recon)
        state.samples += len(keys)
        for x in xs:
            for unit, n in self.modality.rate_units(x).items():
                state.units[unit] = state.units.get(unit, 0.0) + float(n)
        for ex in self.extractors.values():
            with torch.inference_mode():
                state.feature(f"{ex.name}/input", ex.dim).update(ex(target))
                for name, y in decoded.items():
                    state.feature(f"{ex.name}/{name}", ex.dim).update(ex(y))
        for j, pos in enumerate(positions):
            if pos in self.picks:
                state.pictures[pos] = {"input": _rows(target)[j], **{n: _rows(y)[j] for n, y in decoded.items()}}

    def _sample_tokens(self, tokens: Tokens, tok: Any) -> list[np.ndarray]:
        data = tokens.data.float() if tokens.indices is None else tokens.data
        data = data.cpu().numpy()
        mask = tokens.mask.cpu().numpy() if tokens.mask is not None else None
        return [data[b][mask[b]] if mask is not None else data[b] for b in range(len(data))]

    def account(self, state: EvalState, column: str, recon: Any, target: Any, bits: list[float],
                tokens: list[np.ndarray] | None) -> None:
        from tokcore.eval.state import CodeCounts

        col = state.column(column)
        col.samples += len(bits)
        col.bits += float(sum(bits))
        for k, v in self.modality.metric_totals(recon, target).items():
            col.totals[k] = col.totals.get(k, 0.0) + float(v)
        if tokens is None:
            return
        tok = self.tok if column == TOKENIZER else self.others[column]
        positions = math.prod(tok.index_shape or [1]) if tok.is_discrete else 1
        for a in tokens:
            # tokens: indices over their index positions (stages, heads); latent vectors over channels
            col.lengths[int(a.size // positions) if a.dtype.kind in "iu" else int(a.size // a.shape[-1])] += 1
        if tok.is_discrete:
            if col.codes is None:
                col.codes = CodeCounts(tok.codebook_size, positions)
            for a in tokens:
                col.codes.add(a)


def part_path(out: Path, rank: int, world: int) -> Path:
    return out / PARTS / f"rank{rank}-of{world}"


def run_rank(plan: EvalPlan, out: Path, opts: EvalOptions, threads: ThreadChoice | None = None) -> None:
    """Evaluate this rank's chunks (one process, or one rank of `--nproc N`)."""
    from tokcore.runtime.distributed import barrier, process_group

    threads = threads or choose_threads(local_ranks(), 0, opts.threads, key="--threads")
    with process_group(opts.device) as ctx, using(threads):
        ev = Evaluator(plan, out, opts, ctx.device)
        path = part_path(out, ctx.rank, ctx.world_size)
        state = EvalState.load(path) if path.with_suffix(".json").is_file() else EvalState()
        chunks = math.ceil(len(ev.keys) / plan.chunk_samples)
        pending = [c for c in range(ctx.rank, chunks, ctx.world_size) if c not in state.chunks]
        progress = Progress(sum(min(plan.chunk_samples, len(ev.keys) - c * plan.chunk_samples) for c in pending),
                            ctx.is_main and opts.progress, desc="evaluate", unit="sample")
        try:
            for c in pending:
                ev.add_chunk(state, c)
                state.chunks.append(c)
                path.parent.mkdir(parents=True, exist_ok=True)
                state.save(path)
                progress.update(min(plan.chunk_samples, len(ev.keys) - c * plan.chunk_samples))
        finally:
            progress.close()
        barrier(ctx)


def _worker(plan: dict[str, Any], out: str, opts: dict[str, Any], threads: ThreadChoice) -> None:
    opts["curve"] = tuple(opts["curve"])
    run_rank(EvalPlan(**plan), Path(out), EvalOptions(**opts), threads)


def drop_other_attempts(out: Path, world: int) -> None:
    """Remove the states an attempt with another number of ranks left: its ranks took other
    chunks, so they cannot be continued (their chunks are evaluated again)."""
    for stale in sorted((out / PARTS).glob("rank*-of*.json")):
        if not stale.name.endswith(f"-of{world}.json"):
            stale.with_suffix(".safetensors").unlink(missing_ok=True)
            stale.unlink()


def merged_state(out: Path, world: int) -> EvalState:
    state = EvalState()
    for r in range(world):
        state.merge(EvalState.load(part_path(out, r, world)))
    return state


# -- entry point ------------------------------------------------------------------------------------------
def evaluate(checkpoint: str | Path, output: str | Path | None = None, split: str = "val",
             overrides: Sequence[str] = (), *, compare: Sequence[str | Path] = (),
             baselines: Sequence[str] | None = None, features: dict[str, str] | None = None, nproc: int = 1,
             options: EvalOptions | None = None, num_tokens: int | list[int] | None = None) -> dict[str, Any]:
    """Evaluate the run `checkpoint` on `split` of its dataset (with `data.KEY=VALUE`
    `overrides`) into `output` (default `<run>/eval-<split>`); returns what `metrics.json`
    holds. A finished evaluation is read back, not redone."""
    from tokcore.eval.report import summarize, write_reports

    opts = options or EvalOptions()
    if nproc < 1 or opts.batch_size < 1 or opts.chunk_samples < 1:
        raise TokcoreError("--nproc, the batch size and the chunk size must be at least 1")
    plan = replace(make_plan(checkpoint, split, overrides, compare, baselines, dict(features or {}), opts),
                   num_tokens=num_tokens)
    out = Path(output) if output else Path(checkpoint) / f"eval-{split}"
    if (out / METRICS).is_file() and (out / PLAN).is_file():
        check_plan(out, plan)
        result = json.loads((out / METRICS).read_text(encoding="utf-8"))
        write_reports(out, result, print_only=True)
        return result
    check_plan(out, plan)
    start = time.time()
    tok_opts = TokenizeOptions(batch_size=opts.batch_size, device=opts.device, progress=opts.progress,
                               threads=opts.threads, workers=0)
    summary = tokenize(plan.checkpoint, out / "tokens", data=plan.data, nproc=nproc, options=tok_opts,
                       num_tokens=plan.num_tokens)
    if not (summary.samples or summary.already_complete) or len(TokenStore(out / "tokens")) == 0:
        raise TokcoreError(f"split '{split}' of {plan.checkpoint}'s dataset has no samples to evaluate; "
                           "choose another --split or data overrides")
    if launched():  # torchrun/SLURM started every rank: each evaluates its chunks, rank 0 reports
        from tokcore.runtime.distributed import from_environment

        rank, world = from_environment(opts.device)[:2]
        run_rank(plan, out, opts)
        if rank != 0:
            return {}
    else:
        world = nproc
        drop_other_attempts(out, world)
        if world > 1:
            threads = choose_threads(nproc, 0, opts.threads, key="--threads")
            spawn(_worker, (asdict(plan), str(out), asdict(opts), threads), nproc, device=opts.device)
        else:
            run_rank(plan, out, opts)
    state = merged_state(out, world)
    result = summarize(plan, state, TokenStore(out / "tokens"), seconds=time.time() - start)
    write_reports(out, result, state=state)
    return result


def parse_features(items: Sequence[str]) -> dict[str, str]:
    """`["fid=/w/pt_inception.pth", "fd_vgg16"]` -> {"fid": "/w/pt_inception.pth", "fd_vgg16": ""}
    (a bare name: the network's own file, where the plugin knows one on disk)."""
    out = {}
    for item in items:
        name, sep, file = item.partition("=")
        if not name.strip() or (sep and not file.strip()):
            raise ConfigError(f"--features '{item}': write NAME=FILE or NAME, e.g. fid=/weights/pt_inception.pth")
        out[name.strip()] = file.strip()
    return out
