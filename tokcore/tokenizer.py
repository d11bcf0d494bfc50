"""The Tokenizer: a modality spec, an encoder, a quantizer and a decoder, composed.

`encode` takes raw data (validated, then normalized with the recorded statistics) and
returns Tokens; `decode` returns raw data. The model itself only ever sees normalized
tensors, through `forward`, which training uses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from tokcore.errors import ConfigError
from tokcore.interfaces import Decoder, Encoder, Quantizer, QuantizerOutput
from tokcore.modality import Modality, denormalize_with, normalize_with


@dataclass
class Tokens:
    """Encoded samples: discrete `indices` `(B, *grid, *index_shape)`, or continuous
    `latents` `(B, *grid, D)` for a continuous bottleneck; `mask` `(B, *grid)` marks valid
    tokens of variable-length sequences; `side` holds per-sample side information
    `{name: (B,) tensor}` that decoding needs (the statistics of a per-image normalization,
    see `Modality.side_info`), or None."""

    indices: Tensor | None = None
    latents: Tensor | None = None
    mask: Tensor | None = None
    side: dict[str, Tensor] | None = None

    def __post_init__(self) -> None:
        if (self.indices is None) == (self.latents is None):
            raise ValueError("Tokens needs exactly one of indices or latents")

    @property
    def data(self) -> Tensor:
        return self.indices if self.indices is not None else self.latents  # type: ignore[return-value]


@dataclass
class TokenizerOutput:
    recon: Tensor  # normalized space, the decoder's output
    quant: QuantizerOutput
    latents: Tensor  # the encoder's output, before quantization


class Tokenizer(nn.Module):
    """Encoder + quantizer + decoder, with the modality's normalization built in.

    Args:
        encoder: maps normalized input to latents `(B, *grid, D)`.
        quantizer: the bottleneck, `dim == encoder.out_dim`.
        decoder: maps codes back, `in_dim == quantizer.dim`.
        modality: validation and normalization of raw inputs; None means identity.
        input_shape: the shape of one sample it was trained on (for `info`).
        config: the component configs it was built from (recorded in checkpoints).
    """

    def __init__(self, encoder: Encoder, quantizer: Quantizer, decoder: Decoder,
                 modality: Modality | None = None, input_shape: tuple[int, ...] | None = None,
                 config: Mapping[str, Any] | None = None):
        super().__init__()
        self.encoder, self.quantizer, self.decoder = encoder, quantizer, decoder
        self.modality = modality
        self.input_shape = tuple(input_shape) if input_shape else tuple(encoder.example_input(1).shape[1:])
        self.config = dict(config or {})

    def forward(self, x: Tensor, **cond: Any) -> TokenizerOutput:
        """Training path on a *normalized* batch."""
        z = self.encoder(x)
        q = self.quantizer(z)
        return TokenizerOutput(self.decoder(q.quantized, **cond), q, z)

    def prepare(self, batch: Tensor | Mapping[str, Any]) -> Tensor:
        """A raw batch (a tensor, or a sample dict with "input") validated and normalized
        (`encode` also keeps the side information of a per-sample normalization)."""
        return self._prepare(batch)[0]

    def _prepare(self, batch: Tensor | Mapping[str, Any]) -> tuple[Tensor, dict[str, Tensor] | None]:
        """`prepare`, and the per-sample side information of the normalization (or None)."""
        x = batch["input"] if isinstance(batch, Mapping) else batch
        if self.modality is None:
            return x.float(), None
        x = self.modality.validate(x, sample="batch")
        side = self.modality.side_info(x)
        return normalize_with(self.modality, x, side), side

    @torch.inference_mode()
    def encode(self, batch: Tensor | Mapping[str, Any]) -> Tokens:
        """A raw batch to tokens; `tokens.side` carries what a per-sample normalization needs
        to be undone by `decode`."""
        x, side = self._prepare(batch)
        tokens = self.encode_normalized(x)
        tokens.side = side
        return tokens

    @torch.inference_mode()
    def encode_normalized(self, x: Tensor) -> Tokens:
        """`encode` of a batch that is already validated and normalized (`prepare`d): the
        tokenize pipeline prepares batches in its DataLoader workers."""
        with _eval(self):
            q = self.quantizer(self.encoder(x.to(_device(self))))
        if q.indices is None:
            return Tokens(latents=q.quantized)
        return Tokens(indices=q.indices)

    @torch.inference_mode()
    def decode(self, tokens: Tokens | Tensor, **cond: Any) -> Tensor:
        """Tokens (or an index tensor) back to raw values (with `tokens.side` when the
        modality's normalization is per sample)."""
        if isinstance(tokens, Tensor):
            tokens = Tokens(indices=tokens) if not tokens.is_floating_point() else Tokens(latents=tokens)
        with _eval(self):
            codes = tokens.latents if tokens.indices is None else self.quantizer.indices_to_codes(tokens.indices)
            out = self.decoder(codes.to(_device(self)), **cond)
        if self.modality is None:
            return out
        side = None if tokens.side is None else {k: v.to(out.device) for k, v in tokens.side.items()}
        return denormalize_with(self.modality, out, side)

    def info(self) -> dict[str, Any]:
        """Input spec, token grid, codebook, and what compression that amounts to."""
        grid = tuple(self.encoder.token_grid(self.input_shape))
        n_tokens = math.prod(grid)
        bits = self.quantizer.bits_per_token * n_tokens
        return {
            "modality": self.modality.config() if self.modality is not None else None,
            "input_shape": list(self.input_shape),
            "token_grid": list(grid),
            "tokens_per_sample": n_tokens,
            "index_shape": list(self.quantizer.index_shape),
            "codebook_size": self.quantizer.codebook_size,
            "latent_dim": self.quantizer.dim,
            "bits_per_sample": bits,
            "components": {k: v.get("name") for k, v in self.config.items() if isinstance(v, Mapping)},
            "parameters": {name: sum(p.numel() for p in m.parameters())
                           for name, m in (("encoder", self.encoder), ("quantizer", self.quantizer),
                                           ("decoder", self.decoder))},
        }


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


def _device(module: nn.Module) -> torch.device:
    p = next(module.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def build_tokenizer(model: Mapping[str, Any], modality: Mapping[str, Any] | None = None,
                    input_shape: tuple[int, ...] | None = None) -> Tokenizer:
    """A Tokenizer from a config's `model:` section (and `modality:`), components by name."""
    from tokcore import registry

    parts: dict[str, Any] = {}
    for key, kind in (("encoder", "encoder"), ("quantizer", "quantizer"), ("decoder", "decoder")):
        if key not in model:
            raise ConfigError(f"missing '{key}' (a {kind} config with 'name')", key=f"model.{key}")
        try:
            parts[key] = registry.build(kind, model[key])
        except ConfigError as err:
            raise err.located(prefix=f"model.{key}") from None
    mod = None
    if modality is not None:
        try:
            mod = registry.build("modality", modality)
        except ConfigError as err:
            raise err.located(prefix="modality") from None
    enc, q, dec = parts["encoder"], parts["quantizer"], parts["decoder"]
    if enc.out_dim != q.dim:
        raise ConfigError(f"{q.dim} differs from model.encoder's out_dim {enc.out_dim}; make them equal",
                          key="model.quantizer.dim")
    if dec.in_dim != q.dim:
        raise ConfigError(f"{dec.in_dim} differs from model.quantizer's dim {q.dim}; make them equal",
                          key="model.decoder.in_dim")
    config = {"encoder": dict(model["encoder"]), "quantizer": dict(model["quantizer"]),
              "decoder": dict(model["decoder"])}
    return Tokenizer(enc, q, dec, mod, input_shape, config)
