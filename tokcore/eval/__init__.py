"""`tokcore eval`: measure a tokenizer on a split beside other tokenizers and baseline codecs
(see `tokcore.eval.job`)."""

from tokcore.eval.job import EvalOptions, evaluate

__all__ = ["EvalOptions", "evaluate"]
