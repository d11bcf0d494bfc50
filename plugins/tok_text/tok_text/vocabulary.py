"""WordPiece pipelines of the `tokenizers` library: built for fitting, read from an existing
vocabulary, and carried inside tokcore checkpoints as bytes.

One `tokenizers.Tokenizer` holds the whole pipeline (normalizer, pre-tokenizer, WordPiece
model, template of special tokens, decoder), so encoding a batch is one call into the
library's Rust code, and the pipeline is saved and restored as its own JSON.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import WordPiece

from tokcore.api import ConfigError

PAD, UNK, MASK = "[PAD]", "[UNK]", "[MASK]"
WRAPS = {"cls_sep": ("[CLS]", "[SEP]"), "bos_eos": ("[SOS]", "[EOS]"), "none": ()}
PREFIX = "##"  # marks a piece that continues a word

Normalizer = Literal["bert", "nfc", "nfkc", "none"]
PreTokenizer = Literal["bert", "whitespace"]
Wrap = Literal["cls_sep", "bos_eos", "none"]


def special_tokens(wrap: Wrap, extra: list[str] = ()) -> list[str]:
    """The special tokens in id order: [PAD]=0, [UNK]=1, the wrapping pair, [MASK], then
    modality and task tokens."""
    return list(dict.fromkeys([PAD, UNK, *WRAPS[wrap], MASK, *extra]))


def new_pipeline(*, lowercase: bool = True, strip_accents: bool | None = None, normalizer: Normalizer = "bert",
                 pre_tokenizer: PreTokenizer = "bert", split_digits: bool = False,
                 max_word_chars: int = 100) -> Tokenizer:
    """An empty WordPiece pipeline, ready for `train_from_iterator`.

    `pre_tokenizer="bert"` splits on whitespace and punctuation (BERT, 4M): decoding cannot
    know whether a space stood before a punctuation mark and guesses as English does.
    `"whitespace"` splits on whitespace only, so decoding gives back the normalized text
    with each run of whitespace as one space.
    """
    tok = Tokenizer(WordPiece(unk_token=UNK, continuing_subword_prefix=PREFIX, max_input_chars_per_word=max_word_chars))
    tok.normalizer = _normalizer(normalizer, lowercase, strip_accents)
    splits = [pre_tokenizers.BertPreTokenizer() if pre_tokenizer == "bert" else pre_tokenizers.WhitespaceSplit()]
    if split_digits:
        splits.append(pre_tokenizers.Digits(individual_digits=True))
    tok.pre_tokenizer = splits[0] if len(splits) == 1 else pre_tokenizers.Sequence(splits)
    tok.decoder = decoders.WordPiece(prefix=PREFIX, cleanup=pre_tokenizer == "bert")
    return tok


def _normalizer(kind: Normalizer, lowercase: bool, strip_accents: bool | None) -> normalizers.Normalizer | None:
    if kind == "bert":
        return normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=strip_accents,
                                          lowercase=lowercase)
    steps = {"nfc": [normalizers.NFC()], "nfkc": [normalizers.NFKC()], "none": []}[kind]
    if strip_accents if strip_accents is not None else lowercase:  # BERT's rule: accents go with case
        steps += [normalizers.NFD(), normalizers.StripAccents()]
    if lowercase:
        steps.append(normalizers.Lowercase())
    return normalizers.Sequence(steps) if steps else None


def set_template(tok: Tokenizer, wrap: Wrap) -> None:
    """Put the wrapping pair around every sequence (`[CLS] $A [SEP]`, `[SOS] $A [EOS]`), or none."""
    if wrap == "none":
        tok.post_processor = None
        return
    first, last = WRAPS[wrap]
    ids = {t: tok.token_to_id(t) for t in (first, last)}
    missing = [t for t, i in ids.items() if i is None]
    if missing:
        raise ConfigError(f"the vocabulary has no {' or '.join(missing)} token, which wrap '{wrap}' needs; "
                          "choose another wrap or add the tokens", key="wrap")
    tok.post_processor = processors.TemplateProcessing(
        single=f"{first} $A {last}", pair=f"{first} $A {last} $B:1 {last}:1", special_tokens=list(ids.items()))


def read_vocabulary(path: str | Path, *, lowercase: bool = True, strip_accents: bool | None = None,
                    wrap: Wrap = "cls_sep") -> Tokenizer:
    """An existing vocabulary as a pipeline: a tokenizers JSON file (complete as saved), or a
    BERT-style `vocab.txt` (one token per line, id = line number) with BERT's normalizer,
    pre-tokenizer and `[CLS] ... [SEP]` template (`wrap`)."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"no such vocabulary file '{path}'", key="vocab")
    if file.suffix == ".json":
        try:
            return Tokenizer.from_file(str(file))
        except Exception as err:
            raise ConfigError(f"'{path}' is not a tokenizers JSON file: {err}", key="vocab") from None
    tokens = file.read_text(encoding="utf-8").splitlines()
    vocab: dict[str, int] = {}
    for token in tokens:
        vocab.setdefault(token.strip(), len(vocab))
    if UNK not in vocab:
        raise ConfigError(f"'{path}' has no {UNK} line; a WordPiece vocab.txt needs one", key="vocab")
    tok = new_pipeline(lowercase=lowercase, strip_accents=strip_accents)
    tok.model = WordPiece(vocab, unk_token=UNK, continuing_subword_prefix=PREFIX)
    tok.add_special_tokens([t for t in special_tokens(wrap) if t in vocab])
    set_template(tok, wrap)
    return tok


def normalized_text(tok: Tokenizer, text: str) -> str:
    """What decoding can give back at best: the pipeline's normalization of `text` with
    each run of whitespace as one space."""
    out = tok.normalizer.normalize_str(text) if tok.normalizer is not None else text
    return " ".join(out.split())


def to_tensor(tok: Tokenizer | None) -> torch.Tensor:
    """The pipeline as UTF-8 JSON bytes in a uint8 tensor (empty for none), for state dicts."""
    data = tok.to_str().encode("utf-8") if tok is not None else b""
    return torch.frombuffer(bytearray(data), dtype=torch.uint8) if data else torch.zeros(0, dtype=torch.uint8)


def from_tensor(data: torch.Tensor) -> Tokenizer | None:
    return Tokenizer.from_str(bytes(data.numpy()).decode("utf-8")) if data.numel() else None
