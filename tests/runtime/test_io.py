"""Atomic writes (`tokcore.runtime.io`): never half-written, and with the permissions a plain
`open()` / `mkdir()` would give under the process's umask (issue 13: every output was 0600)."""

import contextlib
import os
import stat

import pytest

from tokcore.runtime.io import (
    atomic_directory,
    atomic_write_bytes,
    atomic_write_figure,
    atomic_write_json,
    atomic_write_text,
)

UMASKS = [0o022, 0o002, 0o077, 0o027, 0o000]


@contextlib.contextmanager
def umask(mask):
    before = os.umask(mask)
    try:
        yield
    finally:
        os.umask(before)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask", UMASKS, ids=oct)
def test_atomic_files_get_the_mode_a_plain_open_gives(tmp_path, mask):
    import matplotlib.pyplot as plt

    with umask(mask):
        with open(tmp_path / "plain.txt", "w") as f:
            f.write("x")
        atomic_write_bytes(tmp_path / "a.bin", b"x")
        atomic_write_text(tmp_path / "sub" / "b.txt", "x")  # the parent is made on the way
        atomic_write_json(tmp_path / "c.json", {"a": 1})
        atomic_write_figure(plt.figure(figsize=(1, 1)), tmp_path / "d.png")
    assert mode(tmp_path / "plain.txt") == 0o666 & ~mask
    for name in ("a.bin", "sub/b.txt", "c.json", "d.png"):
        assert mode(tmp_path / name) == 0o666 & ~mask, name
    assert mode(tmp_path / "sub") == 0o777 & ~mask
    assert not list(tmp_path.rglob("*.tmp"))


@pytest.mark.parametrize("mask", UMASKS, ids=oct)
def test_atomic_directories_get_the_mode_a_plain_mkdir_gives(tmp_path, mask):
    with umask(mask):
        os.mkdir(tmp_path / "plain")
        for _ in range(2):  # a new directory, then one that replaces it whole
            with atomic_directory(tmp_path / "store") as tmp:
                (tmp / "f.txt").write_text("x")
                atomic_write_text(tmp / "g.txt", "x")
    assert mode(tmp_path / "plain") == 0o777 & ~mask
    assert mode(tmp_path / "store") == 0o777 & ~mask
    assert mode(tmp_path / "store" / "g.txt") == 0o666 & ~mask
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain", "store"]


def test_replacing_a_file_keeps_its_mode_as_a_plain_open_does(tmp_path):
    path = tmp_path / "config.yaml"
    with umask(0o022):
        atomic_write_text(path, "a: 1\n")
        os.chmod(path, 0o640)
        atomic_write_text(path, "a: 2\n")
    assert path.read_text() == "a: 2\n"
    assert mode(path) == 0o640


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "x.txt"
    atomic_write_text(path, "old")

    with pytest.raises(TypeError):
        atomic_write_bytes(path, object())  # not bytes: fails while writing
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.txt"]


def test_a_run_and_its_token_store_are_readable_as_the_umask_says(tmp_path, walks_config):
    """Checkpoints, config.yaml, samples and token shards: the group may read them all under
    umask 0o027 (a shared cluster), and no one else may."""
    from tokcore.cli import main

    walks_config(samples_every=1)
    with umask(0o027):
        assert main(["train", "--config", str(tmp_path / "cfg.yaml"), "--output", str(tmp_path / "run")]) == 0
        assert main(["tokenize", "--checkpoint", str(tmp_path / "run"), "--output", str(tmp_path / "tokens"),
                     "--workers", "0", "--quiet", "--format", "npy"]) == 0
    files = [p for p in [*(tmp_path / "run").rglob("*"), *(tmp_path / "tokens").rglob("*")] if p.is_file()]
    suffixes = {p.suffix for p in files}
    assert {".safetensors", ".yaml", ".npz", ".bin", ".npy", ".json"} <= suffixes, suffixes
    assert {str(p.relative_to(tmp_path)): oct(mode(p)) for p in files if mode(p) != 0o640} == {}
    dirs = [p for p in [*(tmp_path / "run").rglob("*"), *(tmp_path / "tokens").rglob("*")] if p.is_dir()]
    assert {str(p.relative_to(tmp_path)): oct(mode(p)) for p in dirs if mode(p) != 0o750} == {}
