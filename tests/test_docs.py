"""The README's and docs' examples work as written: every Python block runs, in a directory
holding what the docs say exists by then (the demo's run and token store, walks.npy made by
the documented command, the walks run), and commands name run directories that something made."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tokcore.cli import main

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PLUGIN_READMES = sorted((ROOT / "plugins").glob("tok_*/README.md"))
DEMO_RUN = re.search(r"^run=(\S+)$", (ROOT / "scripts/demo.sh").read_text(), re.M).group(1)


def blocks(path: Path, lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", path.read_text(encoding="utf-8"), re.S | re.M)


def runs_used(text: str) -> set[str]:
    return set(re.findall(r"""(?:--checkpoint |--run |load_tokenizer\(["'])(runs/[\w.-]+)""", text))


def runs_trained(text: str) -> set[str]:
    """Runs a doc makes: trained, or imported (`tokcore import` writes a run directory too)."""
    return {m for line in text.splitlines() if "tokcore train" in line or "tokcore import" in line
            for m in re.findall(r"--output (runs/[\w.-]+)", line)}


def test_the_readme_and_the_token_store_guide_use_the_run_the_demo_makes():
    for doc in (ROOT / "README.md", ROOT / "docs/token-store.md"):
        assert runs_used(doc.read_text()) == {DEMO_RUN}, doc.name


@pytest.mark.parametrize("doc", DOCS + PLUGIN_READMES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_run_directory_a_doc_uses_is_one_it_trains_or_the_demos(doc):
    text = doc.read_text()
    assert runs_used(text) <= runs_trained(text) | {DEMO_RUN}


GAZE = {"tokcore": 1, "requires": ["tok-gaze>=0.1"], "seed": 0,
        "modality": {"name": "gaze", "fov": [90.0, 70.0], "fill": "interpolate"},
        "model": {"encoder": {"name": "dct1d", "in_channels": 2, "out_dim": 16, "keep": 8},
                  "quantizer": {"name": "rvq", "codebook_size": 16, "stages": 2, "kmeans_init": False},
                  "decoder": {"name": "dct1d", "out_channels": 2, "frames": 60, "keep": 8}},
        "data": {"name": "gaze_synthetic", "num_clips": 48, "frames": 60, "val_fraction": 0.25},
        "train": {"steps": 2, "batch_size": 8, "eval_batches": 1}}
WALKS = {"tokcore": 1, "seed": 0,
         "model": {"encoder": {"name": "conv1d", "in_channels": 2, "out_dim": 4, "base_channels": 8,
                               "channel_mult": [1, 2], "num_res_blocks": 1},
                   "quantizer": {"name": "fsq", "levels": [8, 5, 5, 5]},
                   "decoder": {"name": "conv1d", "out_channels": 2, "base_channels": 8, "channel_mult": [1, 2],
                               "num_res_blocks": 1}},
         "data": {"name": "arrays", "path": "walks.npy", "val_fraction": 0.1},
         "train": {"steps": 2, "batch_size": 8, "eval_batches": 1}}


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> Path:
    """What the docs assume by the time their Python runs: walks.npy (made by the command in
    docs/training.md), runs/walks-fsq, and the demo's run with its evaluation (and its held-out
    token store) and tokens/gaze, trained on tiny settings."""
    pytest.importorskip("tok_gaze")
    root = tmp_path_factory.mktemp("docs")
    make = [line for line in blocks(ROOT / "docs/training.md", "bash")[0].splitlines() if "walks.npy" in line]
    assert make, "docs/training.md shows no command that makes walks.npy"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "OMP_NUM_THREADS": "1"}
    subprocess.run(["bash", "-euo", "pipefail", "-c", "\n".join(make)], cwd=root, env=env, check=True)
    assert (root / "walks.npy").is_file()
    cwd = os.getcwd()
    os.chdir(root)
    try:
        for name, cfg in (("walks-fsq", WALKS), ("demo-gaze", GAZE)):
            Path(f"{name}.yaml").write_text(yaml.safe_dump(cfg))
            assert main(["train", "--config", f"{name}.yaml", "--output", f"runs/{name}"]) == 0
        quiet = ["--workers", "0", "--quiet"]
        assert main(["eval", "--checkpoint", DEMO_RUN, "--quiet"]) == 0  # the held-out store: eval-val/tokens
        assert main(["tokenize", "--checkpoint", DEMO_RUN, "--output", "tokens/gaze", *quiet]) == 0
    finally:
        os.chdir(cwd)
    return root


SNIPPETS = [(doc, i, code) for doc in DOCS for i, code in enumerate(blocks(doc, "python"))]


@pytest.mark.parametrize("doc,index,code", SNIPPETS, ids=[f"{d.relative_to(ROOT)}#{i + 1}" for d, i, _ in SNIPPETS])
def test_python_blocks_run_as_written(doc, index, code, sandbox):
    proc = subprocess.run([sys.executable, "-c", code], cwd=sandbox, capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, f"{doc.name}, python block {index + 1}:\n{code}\n{proc.stderr[-3000:]}"
