"""The Tokenizer: a modality spec, an encoder, a quantizer and a decoder, composed.

`encode` takes raw data (validated, then normalized with the recorded statistics, by the one
batch preparation of `tokcore.batch`) and returns Tokens; `decode` returns raw data. The
model itself only ever sees normalized tensors, through `forward`, which training uses.

There is one code path. Every tokenizer has a modality (`array`, the pass-through, when its
config names none). What differs between a tokenizer whose quantizer makes the tokens and
one whose encoder is a `DiscreteEncoder` (a fitted vocabulary, no quantizer) is decided once,
at construction, by its `Coding`: how normalized input becomes Tokens, and Tokens codes
for the decoder.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from abc import ABC, abstractmethod
from typing import Any, Mapping, Sequence

import torch
from torch import Tensor, nn

from tokcore.batch import prepare_batch
from tokcore.errors import ConfigError, TokcoreError
from tokcore.interfaces import (
    Decoder,
    DiscreteDecoder,
    DiscreteEncoder,
    Encoder,
    Quantizer,
    QuantizerOutput,
    TokenizerOutput,
    Tokens,
    VariableLengthEncoder,
    bits_per_token,
)
from tokcore.interfaces.modality import Modality, denormalize_with
from tokcore.runtime.device import module_device


class Coding(ABC):
    """How a tokenizer's tokens are made and read: normalized input to Tokens, Tokens to what
    the decoder takes. Chosen once, at construction; holds no state (the modules are the
    tokenizer's)."""

    variable_length = False

    @abstractmethod
    def source(self, tok: "Tokenizer") -> Quantizer | DiscreteEncoder:
        """What defines the codebook (`codebook_size`, `index_shape`)."""

    def latent_dim(self, tok: "Tokenizer") -> int | None:
        return None

    @abstractmethod
    def forward(self, tok: "Tokenizer", x: Tensor, cond: dict[str, Any]) -> TokenizerOutput:
        """The training path on a normalized batch."""

    @abstractmethod
    def encode(self, tok: "Tokenizer", x: Any, num_tokens: Any = None) -> Tokens:
        """A normalized batch to Tokens (`num_tokens`: per sample, when the count is chosen)."""

    @abstractmethod
    def decode(self, tok: "Tokenizer", tokens: Tokens, cond: dict[str, Any]) -> Any:
        """Tokens to the decoder's normalized output."""


class QuantizerCoding(Coding):
    """Encoder latents -> quantizer -> indices (or continuous latents) -> codes -> decoder."""

    def source(self, tok: "Tokenizer") -> Quantizer:
        return tok.quantizer

    def latent_dim(self, tok: "Tokenizer") -> int | None:
        return tok.quantizer.dim

    def forward(self, tok: "Tokenizer", x: Tensor, cond: dict[str, Any]) -> TokenizerOutput:
        z = tok.encoder(x)
        q = tok.quantizer(z)
        return TokenizerOutput(tok.decoder(q.quantized, **cond), q, z)

    def encode(self, tok: "Tokenizer", x: Tensor, num_tokens: Any = None) -> Tokens:
        _fixed_count(num_tokens)
        q = tok.quantizer(tok.encoder(x))
        return Tokens(latents=q.quantized) if q.indices is None else Tokens(indices=q.indices)

    def decode(self, tok: "Tokenizer", tokens: Tokens, cond: dict[str, Any]) -> Any:
        codes = tokens.latents if tokens.indices is None else tok.quantizer.indices_to_codes(tokens.indices)
        return tok.decoder(codes, **cond)


class EncoderCoding(Coding):
    """A DiscreteEncoder emits the tokens itself (variable length, masked); a DiscreteDecoder
    reads the indices back. There is no training forward: a FitTrainer fits such a model."""

    variable_length = True

    def source(self, tok: "Tokenizer") -> DiscreteEncoder:
        return tok.encoder

    def forward(self, tok: "Tokenizer", x: Tensor, cond: dict[str, Any]) -> TokenizerOutput:
        raise TypeError("a tokenizer with a DiscreteEncoder has no training forward; fit it with a FitTrainer")

    def encode(self, tok: "Tokenizer", x: Any, num_tokens: Any = None) -> Tokens:
        _fixed_count(num_tokens)
        return tok.encoder(x)

    def decode(self, tok: "Tokenizer", tokens: Tokens, cond: dict[str, Any]) -> Any:
        return tok.decoder(tokens.indices, mask=tokens.mask)


class SequenceCoding(Coding):
    """A `VariableLengthEncoder` (TiTok): k tokens per sample, k drawn per sample in training
    and chosen by `encode(x, num_tokens=k)`. A batch is padded to its largest k; only the valid
    tokens are quantized, and the decoder gets their mask and the output size."""

    variable_length = True

    def source(self, tok: "Tokenizer") -> Quantizer:
        return tok.quantizer

    def latent_dim(self, tok: "Tokenizer") -> int | None:
        return tok.quantizer.dim

    def forward(self, tok: "Tokenizer", x: Tensor | list[Tensor], cond: dict[str, Any]) -> TokenizerOutput:
        if isinstance(x, list):
            return self._forward_packed(tok, x, cond)
        counts = cond.pop("num_tokens", None)
        if counts is None and tok.training:
            counts = tok.encoder.draw_num_tokens(x.shape[0], x.device)
        counts = tok.encoder.check_num_tokens(counts, x.shape[0], x.device)
        z = tok.encoder(x, counts)
        mask = lengths_mask(counts, z.shape[1])
        q = self._quantize(tok, z, mask)
        return TokenizerOutput(tok.decoder(q.quantized, mask=mask, **{"size": tuple(x.shape[2:]), **cond}), q, z)

    def _forward_packed(self, tok: "Tokenizer", xs: list[Tensor], cond: dict[str, Any]) -> TokenizerOutput:
        """A packed batch (samples of different sizes, `tokcore.train.packing`) through the
        encoder's and decoder's `forward_packed`: recon and latents are lists, one per sample."""
        counts = cond.pop("num_tokens", None)
        if counts is None and tok.training:
            counts = tok.encoder.draw_num_tokens(len(xs))
        counts = tok.encoder.check_num_tokens(counts, len(xs)).tolist()
        zs = tok.encoder.forward_packed(xs, counts)
        q = tok.quantizer(torch.cat(zs))
        quantized = list(q.quantized.split(counts))
        recon = tok.decoder.forward_packed(quantized, [tuple(x.shape[1:]) for x in xs])
        return TokenizerOutput(recon, q, zs)

    @staticmethod
    def _quantize(tok: "Tokenizer", z: Tensor, mask: Tensor) -> QuantizerOutput:
        """The quantizer on the valid tokens only (padding would skew its statistics and
        losses), scattered back to `(B, k, ...)` with zeros at the padding."""
        q = tok.quantizer(z[mask])
        quantized = z.new_zeros(z.shape[:2] + q.quantized.shape[1:]).masked_scatter(mask[..., None], q.quantized)
        indices = None
        if q.indices is not None:
            shape = z.shape[:2] + q.indices.shape[1:]
            indices = q.indices.new_zeros(shape).masked_scatter(mask.view(*mask.shape, *[1] * (len(shape) - 2)),
                                                                q.indices)
        return QuantizerOutput(quantized, indices, q.losses, q.stats)

    def encode(self, tok: "Tokenizer", x: Tensor, num_tokens: Any = None) -> Tokens:
        counts = tok.encoder.check_num_tokens(num_tokens, x.shape[0], x.device)
        z = tok.encoder(x, counts)
        mask = lengths_mask(counts, z.shape[1])
        q = self._quantize(tok, z, mask)
        return Tokens(indices=q.indices, mask=mask) if q.indices is not None else Tokens(latents=q.quantized, mask=mask)

    def decode(self, tok: "Tokenizer", tokens: Tokens, cond: dict[str, Any]) -> Any:
        codes = tokens.latents if tokens.indices is None else tok.quantizer.indices_to_codes(tokens.indices)
        return tok.decoder(codes, mask=tokens.mask, **cond)


def lengths_mask(counts: Tensor, length: int) -> Tensor:
    """`(B,)` token counts -> `(B, length)` bool, True for each sample's first counts[b] tokens."""
    return torch.arange(length, device=counts.device) < counts[:, None]


def _fixed_count(num_tokens: Any) -> None:
    if num_tokens is not None:
        raise TokcoreError("num_tokens: this tokenizer's token count is fixed by its encoder; only a variable-length "
                         "encoder (such as titok) takes it")


class Tokenizer(nn.Module):
    """Encoder + quantizer + decoder, with the modality's normalization built in.

    Args:
        encoder: maps normalized input to latents `(B, *grid, D)`.
        quantizer: the bottleneck, `dim == encoder.out_dim`; None when the encoder is a
            DiscreteEncoder, which emits the tokens itself.
        decoder: maps codes back, `in_dim == quantizer.dim` (a DiscreteDecoder maps indices).
        modality: validation and normalization of raw inputs (default: `array`, values as
            they are).
        input_shape: the shape of one sample it was trained on (for `info`).
        config: the component configs it was built from (recorded in checkpoints).
    """

    def __init__(self, encoder: Encoder, quantizer: Quantizer | None, decoder: Decoder,
                 modality: Modality | None = None, input_shape: tuple[int, ...] | None = None,
                 config: Mapping[str, Any] | None = None):
        super().__init__()
        if (quantizer is None) != isinstance(encoder, DiscreteEncoder):
            raise TypeError("a Tokenizer needs a quantizer unless its encoder is a DiscreteEncoder, and then none")
        self.encoder, self.quantizer, self.decoder = encoder, quantizer, decoder
        decoder.tie_to(encoder)
        self.coding: Coding = (EncoderCoding() if quantizer is None else SequenceCoding()
                               if isinstance(encoder, VariableLengthEncoder) else QuantizerCoding())
        self.modality = modality if modality is not None else build_modality(None)
        if input_shape is None:
            example = encoder.example_input(1)
            input_shape = tuple(example.shape[1:]) if isinstance(example, Tensor) else ()
        self.input_shape = tuple(input_shape)
        self.config = dict(config or {})

    # -- what the tokens are -----------------------------------------------------------------
    @property
    def is_discrete(self) -> bool:
        return self.codebook_size is not None

    @property
    def codebook_size(self) -> int | None:
        """Index values per position (a vocabulary's size), or None for continuous latents."""
        return self.coding.source(self).codebook_size

    @property
    def index_shape(self) -> tuple[int, ...]:
        return tuple(self.coding.source(self).index_shape)

    @property
    def bits_per_token(self) -> float:
        return bits_per_token(self.codebook_size, self.index_shape)

    @property
    def framewise(self) -> bool:
        """Whether an image encoder and decoder run on each frame of a clip."""
        from tokcore.builtins.models.framewise import FramewiseEncoder

        return isinstance(self.encoder, FramewiseEncoder)

    # -- model space ---------------------------------------------------------------------------
    def forward(self, x: Tensor, **cond: Any) -> TokenizerOutput:
        """Training path on a *normalized* batch."""
        return self.coding.forward(self, x, cond)

    # -- raw data ------------------------------------------------------------------------------
    def prepare(self, batch: Tensor | Mapping[str, Any]) -> Any:
        """A raw batch (a tensor, or a sample dict with "input") validated and normalized
        (`encode` also keeps the side information of a per-sample normalization)."""
        return prepare_batch(self.modality, batch["input"] if isinstance(batch, Mapping) else batch).input

    @torch.inference_mode()
    def encode(self, batch: Tensor | Mapping[str, Any], num_tokens: int | Sequence[int] | Tensor | None = None
               ) -> Tokens:
        """A raw batch to tokens; `tokens.side` carries what a per-sample normalization needs
        to be undone by `decode`. `num_tokens` (a variable-length tokenizer only, see
        `info()["num_tokens"]`): tokens per sample, an int or one per sample; default the most."""
        p = prepare_batch(self.modality, batch["input"] if isinstance(batch, Mapping) else batch)
        tokens = self.encode_normalized(p.input, num_tokens)
        tokens.side = p.side
        return tokens

    @torch.inference_mode()
    def encode_normalized(self, x: Any, num_tokens: int | Sequence[int] | Tensor | None = None) -> Tokens:
        """`encode` of a batch that is already validated and normalized (`prepare`d): the
        tokenize pipeline prepares batches in its DataLoader workers."""
        with _eval(self):
            return self.coding.encode(self, _to(x, module_device(self)), num_tokens)

    @torch.inference_mode()
    def decode(self, tokens: Tokens | Tensor, frames: int | None = None, size: Sequence[int] | None = None,
               **cond: Any) -> Any:
        """Tokens (or an index tensor) back to raw values (with `tokens.side` when the
        modality's normalization is per sample). Each of these is passed only to a decoder
        whose `forward` names it, and ignored by others (their tokens fix the output):
        `frames`: the clip length to give back (a decoder that codes clips padded to its
        temporal stride, such as Cosmos's, trims to it); `size`: the output (H, W) or
        (T, H, W) (a 1D tokenizer decodes to any size; default the size it was trained at)."""
        accepts = inspect.signature(self.decoder.forward).parameters
        for name, value in (("frames", frames), ("size", size)):
            if value is not None and name in accepts:
                cond[name] = tuple(value) if name == "size" else value
        if isinstance(tokens, Tensor):
            tokens = Tokens(indices=tokens) if not tokens.is_floating_point() else Tokens(latents=tokens)
        device = module_device(self)
        tokens = dataclasses.replace(tokens, indices=_to(tokens.indices, device), latents=_to(tokens.latents, device),
                                     mask=_to(tokens.mask, device))
        with _eval(self):
            out = self.coding.decode(self, tokens, cond)
        side = tokens.side
        if side is not None and isinstance(out, Tensor):
            side = {k: _to(v, out.device) for k, v in side.items()}
        return denormalize_with(self.modality, out, side)

    def info(self) -> dict[str, Any]:
        """Input spec, token grid, codebook, and what compression that amounts to. For a
        variable-length tokenizer (a DiscreteEncoder) the grid and bits are the maximum."""
        grid = tuple(self.encoder.token_grid(self.input_shape))
        n_tokens = math.prod(grid)
        parts = {"encoder": self.encoder, "quantizer": self.quantizer, "decoder": self.decoder}
        return {
            "modality": self.modality.config(),
            "input_shape": list(self.input_shape),
            "token_grid": list(grid),
            "tokens_per_sample": n_tokens,
            "variable_length": self.coding.variable_length,
            "index_shape": list(self.index_shape),
            "codebook_size": self.codebook_size,
            "latent_dim": self.coding.latent_dim(self),
            "bits_per_sample": self.bits_per_token * n_tokens,
            "components": {k: v.get("name") for k, v in self.config.items() if isinstance(v, Mapping)},
            "framewise": self.framewise,
            "num_tokens": self._num_tokens_info(),
            "parameters": {name: sum(p.numel() for p in m.parameters()) for name, m in parts.items() if m is not None},
        }


    def _num_tokens_info(self) -> dict[str, int] | None:
        """The range a variable-length encoder's token count is chosen from (None: fixed)."""
        if not isinstance(self.encoder, VariableLengthEncoder):
            return None
        lo, hi = self.encoder.num_tokens_range
        return {"min": 1, "max": hi, "train_min": lo, "default": hi}


def _to(x: Any, device: torch.device) -> Any:
    return x.to(device) if isinstance(x, Tensor) else x


class _eval:
    """Eval mode for the duration of a block, restoring each module's own flag after."""

    def __init__(self, module: nn.Module):
        self.module = module

    def __enter__(self) -> None:
        self.flags = [(m, m.training) for m in self.module.modules()]
        self.module.eval()

    def __exit__(self, *exc: object) -> None:
        for m, flag in self.flags:
            m.training = flag


def build_tokenizer(model: Mapping[str, Any], modality: Mapping[str, Any] | None = None,
                    input_shape: tuple[int, ...] | None = None) -> Tokenizer:
    """A Tokenizer from a config's `model:` section (and `modality:`; none, or None, is the
    pass-through `array` modality), components by name. `model.framewise: true` runs an image
    encoder and decoder on each frame of a clip (`tokcore.builtins.models.framewise`).

    The latent width is stated once: a quantizer's `dim` left out (or None) is the encoder's
    `out_dim`, a decoder's `in_dim` the quantizer's `dim`. `tokenizer.config` records the
    values used, so a checkpoint's tokenizer.json rebuilds the same model."""
    from tokcore import registry

    parts: dict[str, Any] = {}
    config: dict[str, Any] = {}  # recorded in checkpoints
    for key in ("encoder", "quantizer", "decoder"):
        if key not in model:
            if key == "quantizer" and isinstance(parts["encoder"], DiscreteEncoder):
                continue  # the encoder emits the tokens itself
            raise ConfigError(f"missing '{key}' (a {key} config with 'name')", key=f"model.{key}")
        config[key] = dict(model[key])
        try:
            if key == "quantizer" and not isinstance(parts["encoder"], DiscreteEncoder):
                config[key] = _width_from(key, config[key], "dim", parts["encoder"].out_dim)
            elif key == "decoder" and parts.get("quantizer") is not None:
                config[key] = _width_from(key, config[key], "in_dim", parts["quantizer"].dim)
            parts[key] = registry.build(key, config[key])
        except ConfigError as err:
            raise err.located(prefix=f"model.{key}") from None
    enc, q, dec = parts["encoder"], parts.get("quantizer"), parts["decoder"]
    names = {k: model[k]["name"] for k in parts}
    if isinstance(enc, DiscreteEncoder):
        if q is not None:
            raise ConfigError(f"encoder '{names['encoder']}' emits tokens itself; remove model.quantizer",
                              key="model.quantizer")
        if not isinstance(dec, DiscreteDecoder):
            raise ConfigError(f"'{names['decoder']}' decodes latents, but encoder '{names['encoder']}' emits "
                              "token indices; use a discrete decoder (one that takes indices)", key="model.decoder")
        return Tokenizer(enc, None, dec, build_modality(modality), input_shape, config)
    if isinstance(dec, DiscreteDecoder):
        raise ConfigError(f"'{names['decoder']}' takes token indices from a discrete encoder, but encoder "
                          f"'{names['encoder']}' gives latents; use a latent decoder", key="model.decoder")
    if enc.out_dim != q.dim:
        raise ConfigError(f"{q.dim} differs from model.encoder's out_dim {enc.out_dim}; make them equal "
                          "(or leave it out: it defaults to the encoder's out_dim)", key="model.quantizer.dim")
    if dec.in_dim != q.dim:
        raise ConfigError(f"{dec.in_dim} differs from model.quantizer's dim {q.dim}; make them equal "
                          "(or leave it out: it defaults to the quantizer's dim)", key="model.decoder.in_dim")
    config["framewise"] = bool(model.get("framewise", False))
    if config["framewise"]:
        from tokcore.builtins.models.framewise import FramewiseDecoder, FramewiseEncoder

        enc, dec = FramewiseEncoder(enc), FramewiseDecoder(dec)
    return Tokenizer(enc, q, dec, build_modality(modality), input_shape, config)


def _width_from(kind: str, config: dict[str, Any], param: str, width: int) -> dict[str, Any]:
    """`config` with `param` (a latent width) set to `width` where it is left out or None
    and the component takes such a parameter."""
    if config.get(param) is not None or not isinstance(config.get("name"), str):
        return config  # given, or no name (building it says so)
    from tokcore import registry
    from tokcore.registry.params import params_of

    if any(p.name == param for p in params_of(registry.get(kind, config["name"]))[0]):
        return {**config, param: width}
    return config


def build_modality(modality: Mapping[str, Any] | None) -> Modality:
    """The modality of a config's `modality:` section; none (None, as runs saved before the
    `array` modality record it) is the pass-through `array` modality."""
    from tokcore import registry
    from tokcore.builtins.modalities import ArrayModality

    if modality is None:
        return ArrayModality()
    try:
        return registry.build("modality", modality)
    except ConfigError as err:
        raise err.located(prefix="modality") from None
