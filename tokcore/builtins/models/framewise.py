"""Frame-wise video tokenization (VIMPAC's approach): an image encoder and decoder applied to
each frame of a clip, chosen in a config with `model.framewise: true`.

`FramewiseEncoder` folds a batch `(B, C, T, ...)` to frames `(B*T, C, ...)` for the image
encoder and unfolds its latents to `(B, T, *grid, D)`; `FramewiseDecoder` folds latents
`(B, T, *grid, D)` to frames for the image decoder and unfolds its output back to
`(B, C, T, ...)`. The wrapped module's parameters keep their names in the state dict
(`encoder.conv_in.weight`, not `encoder.inner.conv_in.weight`), so the weights of a trained
image tokenizer initialize a frame-wise video one (`train.init_from`) and runs saved before
the wrappers existed still load.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from tokcore.interfaces import Decoder, Encoder

_INNER = "inner."


class _SameNames:
    """State-dict keys of the wrapped module `inner` as if it were the wrapper itself."""

    inner: nn.Module

    def _hide_inner(self) -> None:
        self.register_state_dict_post_hook(_drop_inner_prefix)  # type: ignore[attr-defined]
        self.register_load_state_dict_pre_hook(_add_inner_prefix)  # type: ignore[attr-defined]


def _drop_inner_prefix(module: nn.Module, state: dict[str, Any], prefix: str, local_metadata: Any) -> None:
    for key in [k for k in state if k.startswith(prefix + _INNER)]:
        state[prefix + key[len(prefix + _INNER):]] = state.pop(key)


def _add_inner_prefix(module: nn.Module, state: dict[str, Any], prefix: str, *args: Any) -> None:
    for key in [k for k in state if k.startswith(prefix) and not k.startswith(prefix + _INNER)]:
        state[prefix + _INNER + key[len(prefix):]] = state.pop(key)


def _fold(x: Tensor) -> tuple[Tensor, int, int]:
    if x.dim() < 4:
        raise ValueError(f"a framewise tokenizer takes (B, C, T, ...) batches, got shape {tuple(x.shape)}")
    b, c, t = x.shape[:3]
    return x.transpose(1, 2).reshape(b * t, c, *x.shape[3:]), b, t


class FramewiseEncoder(_SameNames, Encoder):
    """An image encoder applied to every frame of a `(B, C, T, ...)` clip; latents
    `(B, T, *grid, D)`.

    Args:
        inner: the image encoder.
    """

    def __init__(self, inner: Encoder):
        super().__init__()
        self.inner = inner
        self.out_dim = inner.out_dim
        self._hide_inner()

    def forward(self, x: Tensor) -> Tensor:
        frames, b, t = _fold(x)
        z = self.inner(frames)
        return z.reshape(b, t, *z.shape[1:])

    def token_grid(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        c, t, *space = input_shape
        return (t, *self.inner.token_grid((c, *space)))

    def example_input(self, batch_size: int = 2) -> Tensor:
        """The image encoder's example as clips of one frame."""
        return self.inner.example_input(batch_size).unsqueeze(2)


class FramewiseDecoder(_SameNames, Decoder):
    """An image decoder applied to the latents `(B, T, *grid, D)` of every frame; output
    `(B, C, T, ...)`.

    Args:
        inner: the image decoder.
    """

    def __init__(self, inner: Decoder):
        super().__init__()
        self.inner = inner
        self.in_dim = inner.in_dim
        self._hide_inner()

    def forward(self, z: Tensor, **cond: Any) -> Tensor:
        b, t = z.shape[:2]
        frames = self.inner(z.reshape(b * t, *z.shape[2:]), **cond)
        return frames.reshape(b, t, *frames.shape[1:]).transpose(1, 2)

    def example_input(self, batch_size: int = 2) -> Tensor:
        """The image decoder's example latents as clips of one frame."""
        return self.inner.example_input(batch_size).unsqueeze(1)

    def tie_to(self, encoder: Encoder) -> None:
        self.inner.tie_to(encoder.inner if isinstance(encoder, FramewiseEncoder) else encoder)
