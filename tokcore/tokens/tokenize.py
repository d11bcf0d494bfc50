"""`tokcore tokenize`: tokens for every sample of a dataset, computed once, into a token store.

One process, `--nproc N` processes, or torchrun/SLURM ranks on one or many nodes (the output
directory on a shared filesystem): rank r takes the dataset indices i with i % world == r,
in dataset order. DataLoader workers read, validate and normalize inputs while the encoder
runs; the encoder runs under inference mode (and bf16 autocast on a GPU). Each rank commits
its own shards (see `tokcore.tokens.store`); when all are done, rank 0 writes the manifest.

Resumption: a restarted run (same checkpoint weights and dataset) first discards what a
killed run left half-written and any shard whose checksum fails, then skips every key found
in the remaining shards, so the finished store holds each sample exactly once, whatever the
number of processes of each attempt. A finished store is not redone.

A sample whose loading raises (a truncated file, a corrupt .npy), fails validation (wrong
shape, NaN) or makes the encoder fail is recorded with the reason and skipped.
"""

from __future__ import annotations

import inspect
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from tokcore.batch import GuardedDataset, Prepare
from tokcore.errors import ConfigError, TokcoreError
from tokcore.interfaces.data import sample_key
from tokcore.run import Checkpoint, load_tokenizer
from tokcore.runtime.device import autocast, resolve_device
from tokcore.runtime.launch import launched, spawn
from tokcore.runtime.paths import output_folder
from tokcore.runtime.progress import Progress
from tokcore.runtime.threads import ThreadChoice, choose_threads, local_ranks, using
from tokcore.tokens.assemble import finalize, repair
from tokcore.tokens.job import Job, check_job, make_job
from tokcore.tokens.store import MANIFEST, SHARDS, list_shards, token_dtype
from tokcore.tokens.writer import ShardWriter

LONG_TIMEOUT_S = 7 * 24 * 3600.0  # ranks wait for the slowest one at the end
# a clip's frame count, kept in each sample's metadata so `tokcore decode` gives back exactly
# that many frames (a causal video decoder codes padded clips; `Tokenizer.decode(frames=)`)
FRAMES_KEY = "num_frames"
SIZE_KEY = "sample_size"  # (H, W) or (T, H, W) of an image or clip: `Tokenizer.decode(size=)`


@dataclass
class Options:
    """How to run (none of this changes the tokens).

    Args:
        batch_size: samples per encoder call (per process).
        workers: DataLoader worker processes that load and prepare inputs (per process).
        shard_samples: samples per shard at most.
        shard_bytes: token bytes per shard at most (bounds the memory a rank holds).
        device: "auto" (CUDA when present), "cpu" or "cuda".
        precision: "auto" (bf16 autocast on a GPU, fp32 on CPU), "fp32", "bf16" or "fp16".
        latent_dtype: how continuous latents are stored: "float32" or "float16".
        progress: show a progress bar (rank 0).
        threads: torch intra-op threads per process; None chooses them from the CPUs this
            process may use and are idle, shared among the processes and their workers
            (see `tokcore.runtime.threads`; OMP_NUM_THREADS also sets them).
    """

    batch_size: int = 64
    workers: int = 2
    shard_samples: int = 4096
    shard_bytes: int = 64 << 20
    device: str = "auto"
    precision: str = "auto"
    latent_dtype: str = "float32"
    progress: bool = True
    threads: int | None = None


@dataclass
class Summary:
    output: str
    samples: int = 0           # in the store
    failed: int = 0            # inputs recorded as failed
    new: int = 0               # samples tokenized by this run (this process)
    resumed: int = 0           # samples or failures found from an earlier run
    seconds: float = 0.0
    already_complete: bool = False
    exports: dict[str, str] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)


# -- encoding ------------------------------------------------------------------------------------------
def encode_group(tok: Any, x: Tensor, amp: Any, counts: list[int] | None = None) -> list[np.ndarray]:
    """Token arrays of a stacked group, one per sample (valid tokens only when masked);
    `counts`: the token count of each sample (a variable-length tokenizer)."""
    with torch.inference_mode(), amp:
        t = tok.encode_normalized(x, counts)
    data = t.data.float() if t.indices is None else t.data
    data = data.cpu().numpy()
    mask = t.mask.cpu().numpy() if t.mask is not None else None
    return [data[b][mask[b]] if mask is not None else data[b] for b in range(len(data))]


def frame_count(layout: str, x: Any) -> int | None:
    """The number of frames of each clip of a stacked group `x` (a layout with a time axis
    "T"), else None."""
    return int(x.shape[1 + layout.index("T")]) if "T" in layout and isinstance(x, Tensor) else None


def sample_size(layout: str, x: Any) -> list[int] | None:
    """The size of each sample of a stacked image or video group `x`: (H, W) or (T, H, W)
    (for a modality of any axes, the axes after the channels), else None. A decoder that
    takes `size` (a 1D tokenizer trained at many sizes) decodes to it."""
    if not isinstance(x, Tensor):
        return None
    if layout == "":  # any axes: channels first, as the image and video models that take `size` read them
        return [int(n) for n in x.shape[2:]] if x.dim() >= 3 else None
    return [int(x.shape[1 + layout.index(a)]) for a in "THW" if a in layout] if "H" in layout else None


def _check_range(arr: np.ndarray, codebook_size: int | None) -> None:
    if codebook_size is not None and arr.size and (arr.min() < 0 or arr.max() >= codebook_size):
        raise RuntimeError(f"the tokenizer returned indices outside [0, {codebook_size})")


# -- one rank --------------------------------------------------------------------------------------------
def threads_for(opts: Options, ranks: int) -> ThreadChoice:
    """The intra-op threads of each of `ranks` tokenizing processes on this machine."""
    return choose_threads(ranks, opts.workers, opts.threads, key="--threads")


def run_rank(job: Job, out: Path, opts: Options, dataset: Any = None, threads: ThreadChoice | None = None) -> Summary:
    """Tokenize this rank's share (one process, or one rank of a distributed run).
    `threads`: chosen by the launcher for all its ranks; None chooses here."""
    from tokcore import registry
    from tokcore.runtime.distributed import barrier, process_group

    start = time.time()
    threads = threads or threads_for(opts, local_ranks())
    with process_group(opts.device, timeout_s=LONG_TIMEOUT_S) as ctx, using(threads):
        if ctx.is_main and opts.progress:
            print(threads.line(), flush=True)
        check_job(out, job)
        if dataset is None:
            try:
                dataset = registry.build("dataset", job.data)
            except ConfigError as err:
                raise err.located(prefix="data") from None
        n = len(dataset)
        keys = [sample_key(dataset, i) for i in range(n)]
        seen: dict[str, int] = {}
        for i, k in enumerate(keys):
            if k in seen:
                raise TokcoreError(f"dataset keys must be unique: '{k}' is the key of samples {seen[k]} and {i}")
            seen[k] = i
        barrier(ctx)  # every rank checked the job before rank 0 writes it
        if ctx.is_main:
            repair(out, job)
        barrier(ctx)

        done: set[str] = set()
        for _, data in list_shards(out / SHARDS):
            done.update(e["key"] for e in data["samples"])
            done.update(e["key"] for e in data["failed"])
        mine = range(ctx.rank, n, ctx.world_size)
        pending = [i for i in mine if keys[i] not in done]
        summary = Summary(str(out), resumed=len(done))

        # The workers start (and read ahead) before the model is loaded: they do not inherit
        # its memory, and a large checkpoint loads while the first batches are prepared.
        batches = [pending[i:i + opts.batch_size] for i in range(0, len(pending), opts.batch_size)]
        cuda = ctx.device.type == "cuda"
        loader = DataLoader(GuardedDataset(dataset), batch_sampler=batches, collate_fn=Prepare(_modality(job)),
                            num_workers=opts.workers, pin_memory=cuda,
                            prefetch_factor=4 if opts.workers > 0 else None)
        stream = iter(loader)
        tok = load_tokenizer(job.checkpoint, device=ctx.device)
        codebook = tok.codebook_size if tok.is_discrete else None
        decodes_to_size = "size" in inspect.signature(tok.decoder.forward).parameters  # record each sample's then
        dtype = token_dtype(codebook, job.latent_dtype)
        writer = ShardWriter(out / SHARDS, f"rank{ctx.rank}", dtype, max_samples=opts.shard_samples,
                             max_bytes=opts.shard_bytes)
        amp = autocast(ctx.device, opts.precision)
        progress = Progress(len(pending), ctx.is_main and opts.progress, desc="tokenize", unit="sample")
        try:
            for batch in stream:
                for f in batch["failed"]:
                    writer.fail(keys[f["index"]], f["index"], f["error"])
                for g in batch["groups"]:
                    x = g["input"]
                    x = x.to(ctx.device, non_blocking=cuda) if isinstance(x, Tensor) else x
                    frames = frame_count(tok.modality.layout, x)
                    size = sample_size(tok.modality.layout, x) if decodes_to_size else None
                    shape = {**({FRAMES_KEY: frames} if frames is not None else {}),
                             **({SIZE_KEY: size} if size is not None else {})}
                    metas = [{**m, **shape} for m in g["meta"]]
                    items = list(zip(g["indices"], metas))
                    counts = [job.count(i) for i in g["indices"]] if job.num_tokens is not None else None
                    try:
                        arrays = encode_group(tok, x, amp, counts)
                        results = [(i, m, a, None) for (i, m), a in zip(items, arrays)]
                    except Exception:  # find the sample(s) that break the encoder
                        results = []
                        for b, (i, m) in enumerate(items):
                            try:
                                one = counts[b:b + 1] if counts is not None else None
                                results.append((i, m, encode_group(tok, x[b:b + 1], amp, one)[0], None))
                            except Exception as err:
                                results.append((i, m, None, f"{keys[i]}: cannot encode: {type(err).__name__}: {err}"))
                    for i, m, a, err in results:
                        if a is None:
                            writer.fail(keys[i], i, str(err))
                        else:
                            _check_range(a, codebook)
                            writer.add(keys[i], i, a, m)
                progress.update(sum(len(g["indices"]) for g in batch["groups"]) + len(batch["failed"]))
            writer.close()
        finally:
            progress.close()
        summary.new = progress.n
        barrier(ctx)
        if ctx.is_main:
            finalize(out, job, tok, n, keys, dtype)
        summary.seconds = time.time() - start
    return summary


def _modality(job: Job) -> Any:
    """The checkpoint's modality spec (from tokenizer.json, without loading the model)."""
    from tokcore.tokenizer import build_modality

    return build_modality(Checkpoint(job.checkpoint).meta()["modality"])


# -- entry point -------------------------------------------------------------------------------------------
def _worker(job: dict[str, Any], out: str, opts: dict[str, Any], threads: ThreadChoice) -> dict[str, Any]:
    return asdict(run_rank(Job(**job), Path(out), Options(**opts), threads=threads))


def _spawn(job: Job, out: Path, opts: Options, nproc: int) -> list[Summary]:
    results = spawn(_worker, (asdict(job), str(out), asdict(opts), threads_for(opts, nproc)), nproc, device=opts.device)
    return [Summary(**results[r]) for r in sorted(results)]


def is_main_process() -> bool:
    from tokcore.runtime.distributed import from_environment

    return not launched() or from_environment("cpu")[0] == 0


def tokenize(checkpoint: str | Path, output: str | Path, overrides: Sequence[str] = (), *,
             formats: Iterable[str] = (), nproc: int = 1, options: Options | None = None,
             dataset: Any = None, data: dict[str, Any] | None = None,
             num_tokens: int | Sequence[int] | None = None) -> Summary:
    """Tokenize a dataset into the token store `output` (resuming it if a run was cut short),
    then export it to each of `formats` (`output/<format>/`).

    The dataset is the checkpoint run's `data:` config with `data.KEY=VALUE` `overrides`, or
    `data` (a dataset config), or `dataset` (an object; one process only). `num_tokens`, for a
    variable-length tokenizer: K tokens per sample, or [LO, HI] for a count drawn per sample
    (seeded by its dataset index); default the most.
    """
    from tokcore.tokens.export import FORMATS, export
    from tokcore.tokens.store import TokenStore

    opts = options or Options()
    output_folder(output)
    resolve_device(opts.device)  # ConfigError (key `device`) when it asks for a GPU there is not
    formats = list(dict.fromkeys(formats))
    for f in formats:
        if f not in FORMATS:
            raise TokcoreError(f"unknown format '{f}'; choose from {', '.join(FORMATS)}")
    if opts.batch_size < 1 or opts.workers < 0 or nproc < 1:
        raise TokcoreError("batch size and --nproc must be at least 1, workers at least 0")
    if dataset is not None and data is None:
        data = {"object": f"{type(dataset).__module__}.{type(dataset).__qualname__}", "length": len(dataset)}
    job = make_job(checkpoint, overrides, latent_dtype=opts.latent_dtype, data=data, num_tokens=num_tokens)
    out = Path(output)
    start = time.time()
    if (out / MANIFEST).is_file():
        check_job(out, job)
        summary = Summary(str(out), already_complete=True)
    elif nproc > 1 and not launched():
        if dataset is not None:
            raise TokcoreError("a dataset object can be tokenized by one process only; give a data config for --nproc")
        ranks = _spawn(job, out, opts, nproc)
        summary = Summary(str(out), new=sum(r.new for r in ranks), resumed=ranks[0].resumed)
    else:
        summary = run_rank(job, out, opts, dataset)
    summary.seconds = time.time() - start
    if not is_main_process():
        return summary
    store = TokenStore(out)
    summary.samples, summary.failed, summary.failures = len(store), len(store.failed), store.failed
    for f in formats:
        for stale in out.glob(f".{f}.*.tmp"):  # an export that was killed half-way
            shutil.rmtree(stale, ignore_errors=True)
        export(store, f, out / f)
        summary.exports[f] = str(out / f)
    return summary
