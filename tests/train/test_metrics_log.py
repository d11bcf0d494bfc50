"""metrics.jsonl and the console lines of training: time continues across a resume, and
figures read as a person writes them (a vocabulary size is 16000, not 1.6e+04)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import yaml

from tokcore.cli import main
from tokcore.train.log import MetricsLog, format_metrics, read_metrics

CONV = {"base_channels": 8, "channel_mult": [1, 2], "num_res_blocks": 1, "mid_attention": False}


def test_figures_read_as_numbers():
    metrics = {"vocab_size": 16000.0, "words": 3, "loss": 0.0123456, "tokens_per_word": 1.23456,
               "unk_share": 0.0, "fit_seconds": 12345.678, "tiny": 1.5e-7, "ok": True}
    assert format_metrics(metrics) == ("vocab_size 16000, words 3, loss 0.01235, tokens_per_word 1.235, unk_share 0, "
                                       "fit_seconds 12345.7, tiny 1.5e-07, ok True")
