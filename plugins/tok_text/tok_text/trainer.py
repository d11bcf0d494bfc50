"""The `wordpiece` trainer: fits a WordPiece vocabulary on a text dataset with the
`tokenizers` library (or imports an existing one), then measures it on the held-out split."""

from __future__ import annotations

from typing import Any, Iterable, Iterator

from tokenizers import Tokenizer
from tokenizers.trainers import WordPieceTrainer as _LibraryTrainer

from tok_text.boxes import coordinate_tokens
from tok_text.vocabulary import (
    PREFIX,
    UNK,
    Normalizer,
    PreTokenizer,
    Wrap,
    new_pipeline,
    normalized_text,
    read_vocabulary,
    set_template,
    special_tokens,
)
from tokcore.api import ConfigError, FitTrainer


def fit_pipeline(texts: Iterable[str], *, vocab_size: int = 30000, min_frequency: int = 2, lowercase: bool = True,
                 strip_accents: bool | None = None, normalizer: Normalizer = "bert", pre_tokenizer: PreTokenizer = "bert",
                 split_digits: bool = False, wrap: Wrap = "cls_sep", extra_tokens: list[str] = (),
                 coordinate_bins: int | None = None, limit_alphabet: int = 1000, max_word_chars: int = 100,
                 length: int | None = None) -> Tokenizer:
    """A WordPiece pipeline fitted on `texts` (see WordPieceTrainer for the parameters)."""
    tok = new_pipeline(lowercase=lowercase, strip_accents=strip_accents, normalizer=normalizer,
                       pre_tokenizer=pre_tokenizer, split_digits=split_digits, max_word_chars=max_word_chars)
    trainer = _LibraryTrainer(vocab_size=vocab_size, min_frequency=min_frequency, show_progress=False,
                              special_tokens=special_tokens(wrap, list(extra_tokens)), limit_alphabet=limit_alphabet,
                              continuing_subword_prefix=PREFIX)
    tok.train_from_iterator(_batches(texts), trainer=trainer, length=length)
    set_template(tok, wrap)
    if coordinate_bins:
        tok.add_tokens(coordinate_tokens(coordinate_bins))  # one token per quantized coordinate, kept by decode
    return tok


def _batches(texts: Iterable[str], size: int = 1000) -> Iterator[list[str]]:
    batch = []
    for t in texts:
        batch.append(t)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


class WordPieceTrainer(FitTrainer):
    """Fits a WordPiece vocabulary (4M's shared text tokenizer) on the `data` split "train"
    with the tokenizers library, or imports an existing one (`vocab`), and puts it into the
    model's `wordpiece` encoder and decoder. Logs the vocabulary size and, on the "val"
    split, tokens per word, the share of [UNK] tokens, and how often decoding gives back
    the normalized text exactly.

    Args:
        vocab_size: vocabulary size to fit, special and coordinate tokens included in the
            count the library targets (coordinate tokens are added on top).
        min_frequency: pieces seen fewer times are not merged into the vocabulary.
        lowercase: lowercase the text before tokenizing.
        strip_accents: remove accents; None follows `lowercase` (BERT's rule).
        normalizer: "bert" (clean control characters, space out CJK characters, then case
            and accents), "nfc", "nfkc" or "none" (before case and accents).
        pre_tokenizer: "bert" splits on whitespace and punctuation; "whitespace" on
            whitespace only, so decoding returns the normalized text exactly.
        split_digits: split numbers into single digits.
        wrap: special tokens around each sequence: "cls_sep" ([CLS] ... [SEP], BERT),
            "bos_eos" ([SOS] ... [EOS], 4M) or "none".
        extra_tokens: further special tokens: modality or task tokens, sentinels.
        coordinate_bins: add the tokens v0=0 ... v3=<bins-1> so every quantized box
            coordinate (tok_text.boxes) is one token; None for none.
        limit_alphabet: most distinct characters kept as initial pieces.
        max_word_chars: longer words become [UNK].
        vocab: import this vocabulary instead of fitting: a tokenizers JSON file, or a
            BERT vocab.txt read with lowercase, strip_accents and wrap.
        val_samples: held-out texts measured after fitting (0: none).
    """

    def __init__(self, vocab_size: int = 30000, min_frequency: int = 2, lowercase: bool = True,
                 strip_accents: bool | None = None, normalizer: Normalizer = "bert",
                 pre_tokenizer: PreTokenizer = "bert", split_digits: bool = False, wrap: Wrap = "cls_sep",
                 extra_tokens: list[str] | None = None, coordinate_bins: int | None = None,
                 limit_alphabet: int = 1000, max_word_chars: int = 100, vocab: str | None = None,
                 val_samples: int = 2000):
        super().__init__()
        if vocab_size < 2:
            raise ConfigError(f"must be at least 2, got {vocab_size}", key="vocab_size")
        if coordinate_bins is not None and coordinate_bins < 1:
            raise ConfigError(f"must be at least 1, got {coordinate_bins}", key="coordinate_bins")
        self.options = dict(vocab_size=vocab_size, min_frequency=min_frequency, lowercase=lowercase,
                            strip_accents=strip_accents, normalizer=normalizer, pre_tokenizer=pre_tokenizer,
                            split_digits=split_digits, wrap=wrap, extra_tokens=list(extra_tokens or []),
                            coordinate_bins=coordinate_bins, limit_alphabet=limit_alphabet,
                            max_word_chars=max_word_chars)
        self.vocab, self.val_samples = vocab, val_samples

    def fit(self, model: Any, train: Any, val: Any) -> dict[str, float]:
        for part in ("encoder", "decoder"):
            if model.config[part].get("vocab") is not None:
                raise ConfigError("the trainer provides the vocabulary; remove model." + part + ".vocab "
                                  "(set trainer.vocab to import one)", key=f"model.{part}.vocab")
        if self.vocab is not None:
            o = self.options
            tok = read_vocabulary(self.vocab, lowercase=o["lowercase"], strip_accents=o["strip_accents"], wrap=o["wrap"])
        else:
            tok = fit_pipeline(_texts(model, train, len(train)), length=len(train), **self.options)
        model.encoder.set_vocabulary(tok)
        model.decoder.set_vocabulary(tok)
        n_val = min(len(val), self.val_samples)
        return {"vocab_size": float(tok.get_vocab_size()),
                **(measure(model, tok, list(_texts(model, val, n_val))) if n_val else {})}


def _texts(model: Any, dataset: Any, n: int) -> Iterator[str]:
    """The first `n` texts of `dataset`, validated and normalized by the model's modality."""
    for i in range(n):
        text = dataset[i]["input"]
        if model.modality is not None:
            text = model.modality.normalize(model.modality.validate(text, sample=dataset.key(i), batched=False),
                                            batched=False)
        yield text


def measure(model: Any, tok: Tokenizer, texts: list[str], batch_size: int = 256) -> dict[str, float]:
    """Tokens per word, [UNK] share and exact round trips of `texts` through `model`."""
    unk = tok.token_to_id(UNK)
    tokens = unknown = words = exact = 0
    for start in range(0, len(texts), batch_size):
        chunk = texts[start:start + batch_size]
        t = model.encode_normalized(chunk)
        ids = t.indices[t.mask]
        tokens += int(t.mask.sum())
        unknown += int((ids == unk).sum())
        words += sum(len(s.split()) for s in chunk)
        decoded = model.decoder(t.indices, mask=t.mask)
        exact += sum(d == normalized_text(tok, s) for d, s in zip(decoded, chunk))
    return {"val/tokens_per_word": tokens / max(words, 1), "val/unk_rate": unknown / max(tokens, 1),
            "val/roundtrip_exact": exact / max(len(texts), 1)}
