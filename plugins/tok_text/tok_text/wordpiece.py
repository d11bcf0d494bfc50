"""The `wordpiece` encoder and decoder: text to WordPiece ids and back, through one
`tokenizers` pipeline that lives in the state dict (so in `model.safetensors`)."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
from tokenizers import Tokenizer
from torch import Tensor

from tok_text.vocabulary import PAD, UNK, from_tensor, read_vocabulary, to_tensor
from tokcore.api import DiscreteDecoder, DiscreteEncoder, TokcoreError, Tokens


class _HoldsVocabulary:
    """A `tokenizers` pipeline kept as extra state: saved as JSON bytes, restored on load."""

    tokenizer: Tokenizer | None = None

    def _start(self, vocab: str | None) -> None:
        self.tokenizer = None
        if vocab is not None:
            self.set_vocabulary(read_vocabulary(vocab))

    def set_vocabulary(self, tok: Tokenizer) -> None:
        self.tokenizer = tok

    def _fitted(self) -> Tokenizer:
        if self.tokenizer is None:
            raise TokcoreError(f"the {type(self).__name__} has no vocabulary yet: fit one (tokcore train with "
                               "trainer 'wordpiece'), load a checkpoint, or give vocab=FILE")
        return self.tokenizer

    @property
    def codebook_size(self) -> int:
        return self.tokenizer.get_vocab_size(with_added_tokens=True) if self.tokenizer is not None else 0

    def get_extra_state(self) -> Tensor:
        return to_tensor(self.tokenizer)

    def set_extra_state(self, state: Tensor) -> None:
        tok = from_tensor(state)
        if tok is not None:
            self.set_vocabulary(tok)


class WordPieceEncoder(_HoldsVocabulary, DiscreteEncoder):
    """Text to WordPiece ids (4M's caption tokenizer): a batch of strings becomes int64 ids
    `(B, L)`, a mask of real tokens and, with `offsets`, the `[start, end)` character span
    of each token in the (Unicode-normalized) input. The vocabulary comes from the
    `wordpiece` trainer, a checkpoint, or `vocab`.

    Args:
        max_length: longest token sequence; longer texts are truncated (the wrapping
            special tokens are kept).
        padding: "longest" pads a batch to its longest sequence; "max_length" pads every
            batch to max_length.
        special_tokens: add the vocabulary's wrapping tokens ([CLS] ... [SEP] or
            [SOS] ... [EOS]) around each text.
        offsets: return the character spans of tokens (Tokens.offsets); off by default, as
            turning the library's span tuples into a tensor costs about as much as encoding.
        vocab: a tokenizers JSON file or BERT vocab.txt to start from (normally none:
            the vocabulary is fitted or loaded with the checkpoint).
    """

    @staticmethod
    def example_config() -> dict[str, Any]:
        """A small vocabulary fitted on a few sentences, written to a temporary file."""
        return {"vocab": example_vocabulary(), "max_length": 16, "offsets": True}

    def __init__(self, max_length: int = 256, padding: Literal["longest", "max_length"] = "longest",
                 special_tokens: bool = True, offsets: bool = False, vocab: str | None = None):
        super().__init__()
        if max_length < 1:
            raise TokcoreError(f"max_length must be at least 1, got {max_length}")
        self.max_length, self.padding = max_length, padding
        self.special_tokens, self.offsets = special_tokens, offsets
        self._start(vocab)

    def set_vocabulary(self, tok: Tokenizer) -> None:
        tok = Tokenizer.from_str(tok.to_str())  # our own copy: padding and truncation are set on it
        tok.enable_truncation(self.max_length)
        pad = tok.token_to_id(PAD)
        tok.enable_padding(pad_id=pad if pad is not None else 0, pad_token=PAD,
                           length=self.max_length if self.padding == "max_length" else None)
        self.tokenizer = tok

    def forward(self, texts: list[str]) -> Tokens:
        encodings = self._fitted().encode_batch(texts, add_special_tokens=self.special_tokens)
        if not encodings:
            return Tokens(indices=torch.zeros(0, 0, dtype=torch.int64), mask=torch.zeros(0, 0, dtype=torch.bool))
        ids = torch.from_numpy(np.array([e.ids for e in encodings], dtype=np.int64))
        mask = torch.from_numpy(np.array([e.attention_mask for e in encodings], dtype=np.bool_))
        spans = None
        if self.offsets:
            spans = torch.from_numpy(np.array([e.offsets for e in encodings], dtype=np.int64).reshape(*ids.shape, 2))
        return Tokens(indices=ids, mask=mask, offsets=spans)

    def token_grid(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (self.max_length,)

    def example_input(self, batch_size: int = 2) -> list[str]:
        texts = ["a dog runs on the beach.", "two cats sleep on a red sofa near the window."]
        return [texts[i % len(texts)] for i in range(batch_size)]


class WordPieceDecoder(_HoldsVocabulary, DiscreteDecoder):
    """WordPiece ids back to text: special tokens and padding dropped, pieces joined.

    Args:
        vocab: a tokenizers JSON file or BERT vocab.txt to start from (normally none:
            the vocabulary is fitted or loaded with the checkpoint).
        skip_special_tokens: leave out [CLS], [SEP], [PAD], task tokens, ... when decoding
            ([UNK] is kept, so a word the vocabulary cannot spell does not vanish).
    """

    @staticmethod
    def example_config() -> dict[str, Any]:
        return {"vocab": example_vocabulary()}

    def __init__(self, vocab: str | None = None, skip_special_tokens: bool = True):
        super().__init__()
        self.skip_special_tokens = skip_special_tokens
        self.skipped: set[int] = set()
        self._start(vocab)

    def set_vocabulary(self, tok: Tokenizer) -> None:
        self.tokenizer = tok
        # [UNK] stays in the text: a word the vocabulary cannot spell must not vanish silently
        self.skipped = {i for i, t in tok.get_added_tokens_decoder().items() if t.special and t.content != UNK}

    def forward(self, indices: Tensor, mask: Tensor | None = None) -> list[str]:
        rows = indices.reshape(indices.shape[0], -1).tolist()
        keep = mask.reshape(mask.shape[0], -1).tolist() if mask is not None else [[True] * len(r) for r in rows]
        skipped = self.skipped if self.skip_special_tokens else set()
        rows = [[i for i, k in zip(row, m) if k and i not in skipped] for row, m in zip(rows, keep)]
        return self._fitted().decode_batch(rows, skip_special_tokens=False)

    def example_input(self, batch_size: int = 2) -> Tensor:
        g = torch.Generator().manual_seed(0)
        return torch.randint(0, max(self.codebook_size, 1), (batch_size, 6), generator=g)


def example_vocabulary() -> str:
    """A tiny vocabulary fitted on a few sentences, as a tokenizers JSON file (contract kit)."""
    import tempfile
    from pathlib import Path

    from tok_text.trainer import fit_pipeline

    texts = ["a dog runs on the beach.", "two cats sleep on a red sofa near the window.",
             "A café on the corner.", "Two dogs play in the snow."] * 4
    tok = fit_pipeline(texts, vocab_size=120, min_frequency=1)
    path = Path(tempfile.mkdtemp(prefix="tok-text-vocab-")) / "tokenizer.json"
    tok.save(str(path))
    return str(path)


def from_vocabulary(path: str, *, lowercase: bool = True, strip_accents: bool | None = None,
                    wrap: Literal["cls_sep", "bos_eos", "none"] = "cls_sep", max_length: int = 512,
                    modality: dict[str, Any] | None = None) -> Any:
    """A tokcore Tokenizer from an existing vocabulary, without training: a tokenizers JSON
    file, or a BERT vocab.txt read with `lowercase`, `strip_accents` and `wrap`. (To get a
    checkpoint directory for `tokcore tokenize`, run `tokcore train` with `trainer.vocab`.)"""
    from tokcore.api import build_tokenizer

    tok = read_vocabulary(path, lowercase=lowercase, strip_accents=strip_accents, wrap=wrap)
    model = build_tokenizer({"encoder": {"name": "wordpiece", "max_length": max_length}, "decoder": {"name": "wordpiece"}},
                            modality or {"name": "text"})
    model.encoder.set_vocabulary(tok)
    model.decoder.set_vocabulary(tok)
    return model
