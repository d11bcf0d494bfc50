"""Text samples: Python strings, Unicode-normalized before tokenization."""

from __future__ import annotations

import unicodedata
from pathlib import Path
from typing import Any, Literal, Mapping

from tokcore.api import InputError, Modality, atomic_write_text


class TextModality(Modality):
    """Text: a batch is a list of strings. Normalization is Unicode normalization (so that
    visually equal strings tokenize equally); decoding returns strings unchanged.

    Args:
        form: Unicode normalization form: "NFC", "NFKC", "NFD", "NFKD", or "none".
        max_chars: longest accepted sample in characters, or None for no limit.
    """

    name = "text"
    layout = ""

    def __init__(self, form: Literal["NFC", "NFKC", "NFD", "NFKD", "none"] = "NFC", max_chars: int | None = None):
        self.form = form
        self.max_chars = max_chars
        self.mean, self.std, self.value_range = 0.0, 1.0, None

    def validate(self, x: Any, *, sample: str = "input", batched: bool = True) -> Any:
        items = x if batched else [x]
        if batched and not isinstance(x, (list, tuple)):
            raise InputError(f"{sample}: text input must be a list of strings, got {type(x).__name__}")
        for i, s in enumerate(items):
            where = f"{sample}[{i}]" if batched else sample
            if not isinstance(s, str):
                raise InputError(f"{where}: text must be str, got {type(s).__name__}; decode bytes as UTF-8 first")
            if self.max_chars is not None and len(s) > self.max_chars:
                raise InputError(f"{where}: text has {len(s)} characters, more than max_chars={self.max_chars}; "
                                 "split it or raise max_chars")
        return list(items) if batched else x

    def normalize(self, x: Any, batched: bool = True) -> Any:
        if self.form == "none":
            return x
        return [unicodedata.normalize(self.form, s) for s in x] if batched else unicodedata.normalize(self.form, x)

    def denormalize(self, x: Any, batched: bool = True) -> Any:
        return x

    def metric_totals(self, recon: Any, target: Any) -> dict[str, float]:
        """Counts over a batch: texts decoded exactly, equal up to whitespace, and equal up to
        case and whitespace (what a lowercasing vocabulary can give back at best)."""
        pairs = list(zip(recon, target))
        return {"_samples": float(len(pairs)), "exact": float(sum(r == t for r, t in pairs)),
                "exact_up_to_spaces": float(sum(r.split() == t.split() for r, t in pairs)),
                "exact_up_to_case": float(sum(r.casefold().split() == t.casefold().split() for r, t in pairs))}

    def metrics(self, recon: Any, target: Any) -> dict[str, float]:
        """Shares of texts decoded exactly, up to whitespace, and up to case and whitespace."""
        return self.metrics_from_totals(self.metric_totals(recon, target))

    def rate_units(self, x: Any) -> dict[str, float]:
        return {"word": len(x.split())}

    def eval_pictures(self, inputs: Any, columns: Mapping[str, Any], path: Path) -> list[Path]:
        """`<path>.txt`: a few inputs and each codec's decoding of them."""
        out = path.with_suffix(".txt")
        blocks = ["\n".join([f"input:     {t}", *(f"{name + ':':<10} {col[i]}" for name, col in columns.items())])
                  for i, t in enumerate(inputs)]
        atomic_write_text(out, "\n\n".join(blocks) + "\n")
        return [out]

    def write_samples(self, target: Any, recon: Any, path: Path) -> list[Path]:
        """Inputs and decoded texts, alternating, as `<path>.txt`."""
        out = path.with_suffix(".txt")
        atomic_write_text(out, "".join(f"input:   {t}\ndecoded: {r}\n\n" for t, r in zip(target, recon)))
        return [out]

    def write_decoded(self, x: Any, path: Path, meta: Mapping[str, Any] | None = None) -> list[Path]:
        """One decoded text as `<path>.txt` (UTF-8, no trailing newline added)."""
        out = path.with_name(path.name + ".txt")
        atomic_write_text(out, x)
        return [out]

    def example(self, batch_size: int = 2) -> list[str]:
        texts = ["A cafe\u0301 on the corner.", "Two dogs play in the snow."]
        return [texts[i % len(texts)] for i in range(batch_size)]

    def invalid_examples(self, x: Any) -> list[tuple[Any, str]]:
        return [("a bare string", "a string instead of a list"), ([*x, 42], "a non-string item")]
