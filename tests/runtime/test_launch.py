"""`--nproc N` (tokcore.runtime.launch.spawn): no more ranks than the machine can run, and no
rank outlives the process that started it (issue 13: `--nproc 64` on 2 cores ran out of
memory and left 129 orphan processes)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tokcore.errors import TokcoreError
from tokcore.runtime.launch import OVERSUBSCRIBE, check_nproc
from tokcore.runtime.threads import CPUs

TWO = CPUs(2, None, 2, 0.0, 2)


def test_more_ranks_than_usable_cpus_are_refused_with_the_number_that_fits():
    check_nproc(2, "cpu", cpus=TWO, env={})
    with pytest.raises(TokcoreError) as err:
        check_nproc(64, "cpu", cpus=TWO, env={})
    assert str(err.value) == ("--nproc 64 would start 64 processes, but this process may use 2 CPU(s) (affinity 2); "
                              f"use --nproc 2 or fewer (set {OVERSUBSCRIBE}=1 to start them anyway)")
    with pytest.raises(TokcoreError, match=r"may use 3 CPU\(s\) \(affinity 64, cgroup quota 2\.5\); use --nproc 3"):
        check_nproc(4, "auto", cpus=CPUs(64, 2.5), gpus=0, env={})
    check_nproc(64, "cpu", cpus=TWO, env={OVERSUBSCRIBE: "1"})  # forced: the user knows
    with pytest.raises(TokcoreError, match="at least 1"):
        check_nproc(0, "cpu", cpus=TWO, env={})


def test_on_gpus_one_rank_per_gpu():
    check_nproc(2, "auto", cpus=TWO, gpus=2, env={})
    check_nproc(2, "cuda", cpus=CPUs(1), gpus=4, env={})  # a GPU rank needs a GPU, not a whole CPU
    with pytest.raises(TokcoreError, match=r"^--nproc 3 would start 3 processes, but there are 2 GPU\(s\) and each "
                                           r"process needs its own; use --nproc 2 or fewer, or compute on the CPU"):
        check_nproc(3, "auto", cpus=CPUs(64), gpus=2, env={})
    with pytest.raises(TokcoreError, match="may use 2 CPU"):  # device cpu: the CPUs count, not the GPUs
        check_nproc(3, "cpu", cpus=TWO, gpus=8, env={})


@pytest.mark.parametrize("command", ["train", "tokenize"])
def test_train_and_tokenize_refuse_before_starting_anything(tmp_path, monkeypatch, capsys, command, walks_config):
    from tokcore.cli import main

    cfg = walks_config(device="cpu")
    if command == "tokenize":
        assert main(["train", "--config", str(cfg), "--output", str(tmp_path / "run")]) == 0
    capsys.readouterr()
    monkeypatch.delenv(OVERSUBSCRIBE, raising=False)
    monkeypatch.setattr(CPUs, "here", classmethod(lambda cls: CPUs(1, None, 1, 0.0, 1)))  # a 1-CPU machine
    args = (["train", "--config", str(cfg), "--output", str(tmp_path / "out")] if command == "train" else
            ["tokenize", "--checkpoint", str(tmp_path / "run"), "--output", str(tmp_path / "out"), "--device", "cpu"])
    assert main([*args, "--nproc", "2"]) == 2
    err = capsys.readouterr().err
    assert err == ("tokcore: error: --nproc 2 would start 2 processes, but this process may use 1 CPU(s) (affinity 1); "
                   f"use --nproc 1 or fewer (set {OVERSUBSCRIBE}=1 to start them anyway)\n"), err
    assert not (tmp_path / "out").exists()


JOB = '''
import datetime, os, sys, time
from pathlib import Path


def wait(folder, how):
    Path(folder, f"{os.getpid()}.tmp").write_text(str(os.getppid()))
    os.replace(Path(folder, f"{os.getpid()}.tmp"), Path(folder, f"{os.getpid()}.pid"))
    if how == "python":
        time.sleep(300)
    else:  # blocked in C++ as in a collective (Python sees a signal only when the call returns)
        from torch.distributed import TCPStore

        store = TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False)
        store.wait(["never"], datetime.timedelta(seconds=300))
'''


def _descendants(pid: int) -> set[int]:
    """Every process below `pid` (its children, theirs, ...)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper has stopped running)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
@pytest.mark.parametrize("how", ["python", "collective"])
def test_killing_the_launcher_kills_its_ranks(tmp_path, how):
    """SIGKILL the launcher (as the kernel's out-of-memory killer does): its ranks are gone
    within seconds. torch's spawn wrapper has the kernel send a rank SIGINT when its parent
    dies, but Python acts on it only between bytecodes: a rank blocked in a collective or a
    store wait (600 s timeouts, 7 days in tokenize's final barrier) ran on until the timeout."""
    (tmp_path / "rankjob.py").write_text(textwrap.dedent(JOB))
    pids = tmp_path / "pids"
    pids.mkdir()
    code = (f"import sys; sys.path.insert(0, {str(tmp_path)!r}); import rankjob; "
            f"from tokcore.runtime.launch import spawn; spawn(rankjob.wait, ({str(pids)!r}, {how!r}), 2, device='cpu')")
    parent = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, OVERSUBSCRIBE: "1"},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ranks: list[int] = []
    started: set[int] = set()
    try:
        deadline = time.time() + 120
        while len(ranks) < 2 and time.time() < deadline and parent.poll() is None:
            time.sleep(0.2)
            ranks = [int(p.stem) for p in pids.glob("*.pid")]
        assert len(ranks) == 2, f"the ranks did not start (launcher exit status {parent.poll()})"
        assert {int(p.read_text()) for p in pids.glob("*.pid")} == {parent.pid}
        time.sleep(1)  # into the wait
        started = _descendants(parent.pid)  # the ranks, and whatever else the launcher started
        assert set(ranks) <= started
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        deadline = time.time() + 15
        while any(map(_alive, started)) and time.time() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in ranks if _alive(pid)], "ranks outlived their launcher"
        assert not [pid for pid in started if _alive(pid)], "processes outlived the launcher"
    finally:
        for pid in started | set(ranks):  # only what this test started
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        if parent.poll() is None:
            parent.kill()
