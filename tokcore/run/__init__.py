"""The run directory and its checkpoints: the one owner of their format.

    <run>/config.yaml                the resolved config of the run
    <run>/metrics.jsonl, tb/, samples/
    <run>/checkpoints/step-N/        written atomically by `save_checkpoint`, read by `Checkpoint`
    <run>/checkpoints/latest         the name of the newest complete checkpoint

Training writes runs; tokenizing, decoding, evaluation and `load_tokenizer` read them, all
through this package, so none of them depends on another.
"""

from tokcore.run.checkpoint import Checkpoint, latest_checkpoint, resolve_checkpoint
from tokcore.run.load import load_tokenizer

__all__ = ["Checkpoint", "latest_checkpoint", "load_tokenizer", "resolve_checkpoint"]
