"""The run spec: a resolved config as typed objects, with every default set here and only here.

Data flows one way: a config file (with its `_base_` files and command-line overrides) is
read and validated by `tokcore.config.load`, then turned into a `RunSpec`; training,
tokenizing and evaluation read the spec's typed fields instead of re-reading (and
re-defaulting) the dict. A `ComponentSpec` remembers where it sits in the config and which
file it came from, so an error raised while building it names both, as config-time errors do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, Mapping

from tokcore.errors import ConfigError

# What a run uses when its config does not say (the lowest layer of every run's config).
RUN_DEFAULTS: dict[str, Any] = {"trainer": {"name": "vqvae"}, "loss": {"name": "reconstruction"}, "train": {}}


@dataclass
class TrainSettings:
    """Settings of the shared training loop (the `train:` section of a config).

    Args:
        steps: optimizer steps to run.
        batch_size: samples per process per micro-batch.
        grad_accum: micro-batches per optimizer step; the global batch is
            batch_size * grad_accum * number of processes.
        lr: peak learning rate.
        min_lr: learning rate at the end of the cosine schedule.
        warmup_steps: linear warmup from 0 to lr.
        schedule: "cosine" (after warmup, down to min_lr) or "constant".
        weight_decay: AdamW weight decay; applied to matrices and kernels (p.dim() >= 2) except what a component declares in `no_weight_decay` (codebooks, position tables).
        betas: AdamW betas.
        clip_grad: max global gradient norm, or None for no clipping.
        precision: "fp32", "bf16" (autocast) or "fp16" (autocast with a gradient scaler).
        ema_decay: decay of an exponential moving average of the weights, evaluated beside
            the raw weights and used by load_tokenizer; None for no EMA.
        log_every: steps between metric lines in metrics.jsonl.
        eval_every: steps between evaluations on the val split; 0 evaluates only at the end.
        eval_batches: val batches per evaluation (per process); 0 means the whole split.
        save_every: steps between checkpoints; 0 saves only at the end.
        keep_last: checkpoints to keep (the newest ones), besides the best.
        keep_best: a metric ("val/loss", ...) whose lowest value's checkpoint is always kept.
        samples_every: steps between reconstruction pictures (0: only at the end).
        num_workers: DataLoader worker processes per training process.
        threads: torch intra-op threads per training process; None chooses them from the
            CPUs this process may use and are idle, shared among the processes and their
            workers (see `tokcore.runtime.threads`; OMP_NUM_THREADS also sets them).
        device: "auto" (CUDA when present), "cpu" or "cuda".
        init_from: a checkpoint or run directory whose model weights start this run
            (staged training, 4M's full_ckpt).
        freeze: parts of the model to keep fixed: any of "encoder", "quantizer", "decoder".
        multires: [min, max, step] side lengths: each batch is resized to a random size from
            this range (image and video modalities), or None.
        max_tokens: pack each micro-batch to this many sequence positions instead of
            batch_size samples (`tokcore.train.packing`; an encoder with `forward_packed` and
            `sequence_length`, such as titok); None: fixed-size batches.
        views: with max_tokens, the ranges each sample's size is drawn from per epoch:
            {height: [min, max], width: [min, max], max_aspect, frames: [min, max],
            frame_stride: [min, max]} (`tokcore.train.packing.ViewSizes`); None keeps the data's sizes.
    """

    steps: int = 1000
    batch_size: int = 16
    grad_accum: int = 1
    lr: float = 1e-3
    min_lr: float = 0.0
    warmup_steps: int = 0
    schedule: Literal["cosine", "constant"] = "cosine"
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.99])
    clip_grad: float | None = 1.0
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    ema_decay: float | None = None
    log_every: int = 10
    eval_every: int = 0
    eval_batches: int = 4
    save_every: int = 0
    keep_last: int = 2
    keep_best: str | None = None
    samples_every: int = 0
    num_workers: int = 0
    threads: int | None = None
    device: Literal["auto", "cpu", "cuda"] = "auto"
    init_from: str | None = None
    freeze: list[Literal["encoder", "quantizer", "decoder"]] = field(default_factory=list)
    multires: list[int] | None = None
    max_tokens: int | None = None
    views: dict[str, Any] | None = None


@dataclass(frozen=True)
class ComponentSpec:
    """One component of a config: its kind, registry name and resolved parameters, where it
    sits (`key`, e.g. "model.quantizer") and the file that set it (for error messages)."""

    kind: str
    name: str
    params: Mapping[str, Any]
    key: str
    file: str = ""
    resolved: bool = False  # params already checked against the class and defaults filled in

    def config(self) -> dict[str, Any]:
        """`{"name": ..., **params}`, as the config holds it."""
        return {"name": self.name, **self.params}

    def cls(self) -> type:
        from tokcore import registry

        try:
            return registry.get(self.kind, self.name)
        except ConfigError as err:
            raise err.located(file=self.file, prefix=self.key) from None

    def build(self, **extra: Any) -> Any:
        """The component, with `extra` parameters added (a dataset's split). Parameters of a
        resolved config were validated when it was loaded and are not checked again; others
        (a tokenizer.json's) go through the registry's validation."""
        from tokcore import registry

        try:
            if self.resolved:
                return self.cls()(**{**self.params, **extra})
            return registry.build(self.kind, {**self.config(), **extra})
        except ConfigError as err:
            raise err.located(file=self.file, prefix=self.key) from None


@dataclass(frozen=True)
class ModelSpec:
    """The `model:` section: encoder, quantizer (None when the encoder emits tokens itself)
    and decoder, and whether an image model runs frame by frame over video."""

    encoder: ComponentSpec
    quantizer: ComponentSpec | None
    decoder: ComponentSpec
    framewise: bool = False

    def config(self) -> dict[str, Any]:
        """The section as a config (and tokenizer.json) holds it."""
        parts = {k: c.config() for k, c in (("encoder", self.encoder), ("quantizer", self.quantizer),
                                             ("decoder", self.decoder)) if c is not None}
        return {**parts, "framewise": self.framewise} if self.framewise else parts

    @classmethod
    def from_config(cls, model: Mapping[str, Any], where: Callable[[str], str] | str = "",
                    resolved: bool = False) -> "ModelSpec":
        """From a `model:` mapping (a resolved config's, or a tokenizer.json's); `where` is
        the file it came from, or a function from a key to the file that set it."""
        locate = where if callable(where) else (lambda key: where)
        for part in ("encoder", "decoder"):
            if part not in model:
                raise ConfigError(f"missing '{part}' (a {part} config with 'name')", key=f"model.{part}",
                                  file=locate("model"))
        return cls(*(_component(model.get(part), part, f"model.{part}", locate, resolved)
                     for part in ("encoder", "quantizer", "decoder")), framewise=bool(model.get("framewise", False)))


@dataclass(frozen=True)
class RunSpec:
    """A resolved run config, typed. `config` is the whole resolved mapping (what the run
    directory's config.yaml records); the other fields are views of it."""

    config: Mapping[str, Any]
    file: str
    origins: Mapping[tuple[str, ...], str]
    seed: int
    modality: ComponentSpec | None
    model: ModelSpec | None
    loss: ComponentSpec
    trainer: ComponentSpec
    data: ComponentSpec | None
    train: TrainSettings

    @classmethod
    def load(cls, path: str | Path, overrides: Iterable[str] = (),
             adjust: Callable[[Any], None] | None = None) -> "RunSpec":
        """Read, validate and resolve a config file (or `PLUGIN:NAME`) with overrides;
        `adjust(config)` may change the merged config before it is validated (a saved run pins
        its component names to the distributions it recorded)."""
        from tokcore import config

        if adjust is None:
            return cls.from_config(config.load(path, overrides, defaults=RUN_DEFAULTS))
        cfg = config.load(path, overrides, resolve=False, defaults=RUN_DEFAULTS)
        adjust(cfg)
        cfg.data = config.resolve_config(cfg)
        return cls.from_config(cfg)

    @classmethod
    def from_config(cls, cfg: Any) -> "RunSpec":
        """From a validated `tokcore.config.Config` (its data resolved)."""
        data = cfg.data
        where = lambda key: cfg.where(tuple(key.split(".")))  # noqa: E731
        model = data.get("model")
        return cls(
            config=data,
            file=cfg.path,
            origins=dict(cfg.origins),
            seed=int(data.get("seed", 0)),
            modality=_component(data.get("modality"), "modality", "modality", where),
            model=ModelSpec.from_config(model, where, resolved=True) if model is not None else None,
            loss=_component(data.get("loss", RUN_DEFAULTS["loss"]), "loss", "loss", where),
            trainer=_component(data.get("trainer", RUN_DEFAULTS["trainer"]), "trainer", "trainer", where),
            data=_component(data.get("data"), "dataset", "data", where),
            train=TrainSettings(**data.get("train", {})),
        )

    def where(self, key: str) -> str:
        """The file that set `key` ("model.quantizer.dim"), or of its closest ancestor."""
        parts = tuple(key.split(".")) if key else ()
        for n in range(len(parts), 0, -1):
            if parts[:n] in self.origins:
                return self.origins[parts[:n]]
        return self.file

    def require(self, *sections: str, purpose: str = "training") -> None:
        """ConfigError naming the file unless every one of `sections` ("model", "data") is set."""
        for section in sections:
            if getattr(self, section) is None:
                raise ConfigError(f"missing '{section}', which {purpose} needs", file=self.file)

    def dataset(self, split: str, **overrides: Any) -> Any:
        """The `data:` component built for `split`."""
        self.require("data", purpose="building a dataset")
        return self.data.build(**{**overrides, "split": split})


def _component(value: Mapping[str, Any] | None, kind: str, key: str, where: Callable[[str], str],
               resolved: bool = True) -> ComponentSpec | None:
    if value is None:
        return None
    params = {k: v for k, v in value.items() if k != "name"}
    return ComponentSpec(kind, value["name"], params, key, where(key), resolved)
