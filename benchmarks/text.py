"""Batch-encode tokens/s of tok-text's WordPiece tokenizer against the tokenizers library
called directly, in one run.

    python benchmarks/text.py [--checkpoint DIR] [--texts 8192] [--batch 256] [--repeat 7]

Without `--checkpoint` it first fits the 16k vocabulary of the config `tok-text:quick` on the
embedded corpus with `tokcore train` (into a temporary run directory) and prints how long
the fit took. Both sides then encode the same held-out paragraphs in batches of `--batch`:

* tok-text: `tokcore.load_tokenizer(...).encode(batch)`: validation, Unicode normalization
  (the text modality), the library's `encode_batch`, and int64 ids, the mask and the
  character offsets as tensors;
* direct: a `tokenizers.Tokenizer` from the same pipeline JSON with the same truncation and
  padding, `encode_batch(batch)`, then ids and attention mask as numpy arrays (what any
  caller has to do to feed a model).

They run in `--repeat` adjacent pairs, alternating which goes first, and the ratio is the
median over pairs: the machine is shared, and a pair sees the same load. Target: at least
0.9 of the direct library.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from tokenizers import Tokenizer

import tokcore
from tokcore.run.checkpoint import resolve_checkpoint


def fit(run: Path) -> dict[str, float]:
    """Fit the 16k vocabulary with `tokcore train`; returns the fit's logged figures."""
    subprocess.run([sys.executable, "-m", "tokcore", "train", "--config", "tok-text:quick",
                    "--output", str(run)], check=True, stdout=subprocess.DEVNULL)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return rows[-1]


def held_out_texts(run: Path, n: int) -> list[str]:
    config = yaml.safe_load((resolve_checkpoint(run) / "config.yaml").read_text(encoding="utf-8"))
    ds = tokcore.registry.build("dataset", {**config["data"], "split": "val"})
    texts = [ds[i]["input"] for i in range(len(ds))]
    return [texts[i % len(texts)] for i in range(n)]


def direct_library(tok: tokcore.Tokenizer) -> Tokenizer:
    """The same pipeline, straight from the library, with the same truncation and padding."""
    lib = Tokenizer.from_str(tok.encoder.tokenizer.to_str())
    lib.enable_truncation(tok.encoder.max_length)
    lib.enable_padding(pad_id=lib.token_to_id("[PAD]"), pad_token="[PAD]")
    return lib


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, help="a tok-text run or checkpoint (default: fit one now)")
    parser.add_argument("--texts", type=int, default=8192)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="tok-text-bench-") as tmp:
        run = args.checkpoint
        if run is None:
            run = Path(tmp) / "run"
            start = time.perf_counter()
            row = fit(run)
            print(f"fit: {int(row['vocab_size'])}-token vocabulary in {row['fit_seconds']:.1f} s "
                  f"({time.perf_counter() - start:.1f} s for the whole tokcore train, corpus included); held-out: "
                  f"{row['val/tokens_per_word']:.2f} tokens/word, unk {row['val/unk_rate']:.4%}, "
                  f"exact round trips {row['val/roundtrip_exact']:.2%}")
        tok = tokcore.load_tokenizer(run)
        lib = direct_library(tok)
        texts = held_out_texts(run, args.texts)
        batches = [texts[i:i + args.batch] for i in range(0, len(texts), args.batch)]

        def ours() -> int:
            return sum(int(tok.encode(b).mask.sum()) for b in batches)

        def direct() -> int:
            n = 0
            for b in batches:
                enc = lib.encode_batch(b)
                ids = np.array([e.ids for e in enc], dtype=np.int64)
                mask = np.array([e.attention_mask for e in enc], dtype=np.bool_)
                n += int(mask[: len(ids)].sum())
            return n

        tokens = ours()
        assert tokens == direct(), "the two sides disagree on the token count"
        rates: dict[str, list[float]] = {"ours": [], "direct": []}
        for r in range(args.repeat):
            for name, fn in ((("ours", ours), ("direct", direct)) if r % 2 == 0 else (("direct", direct), ("ours", ours))):
                start = time.perf_counter()
                fn()
                rates[name].append(tokens / (time.perf_counter() - start))
        ratios = sorted(o / d for o, d in zip(rates["ours"], rates["direct"]))
        print(f"{len(texts)} held-out texts, {tokens} tokens, batches of {args.batch}")
        print(f"tok-text: {np.median(rates['ours']):,.0f} tokens/s   tokenizers direct: {np.median(rates['direct']):,.0f} tokens/s")
        print(f"tok-text / direct: median of pairs {ratios[len(ratios) // 2]:.3f} (target >= 0.9)")


if __name__ == "__main__":
    main()
