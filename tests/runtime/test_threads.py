"""Intra-op threads per process, chosen from the CPUs a process may use and are idle, shared
among the ranks and their DataLoader workers; or the user's (issue 13: the walks example
took 5 min with torch's default threads on a busy 2-core machine, 15 s with one)."""

from __future__ import annotations

import pytest
import torch

from tokcore.errors import ConfigError
from tokcore.runtime.threads import (
    CPUs,
    ThreadChoice,
    cgroup_cpu_quota,
    choose_threads,
    local_ranks,
    physical_cores,
    threads_per_rank,
    using,
)


def test_cgroup_quota_v2_and_v1(tmp_path):
    assert cgroup_cpu_quota(tmp_path) is None  # no cgroup files: no quota
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_quota(tmp_path) is None
    (tmp_path / "cpu.max").write_text("150000 100000\n")  # docker --cpus 1.5
    assert cgroup_cpu_quota(tmp_path) == 1.5
    v1 = tmp_path / "v1"
    (v1 / "cpu,cpuacct").mkdir(parents=True)
    (v1 / "cpu,cpuacct" / "cpu.cfs_period_us").write_text("100000\n")
    (v1 / "cpu,cpuacct" / "cpu.cfs_quota_us").write_text("-1\n")
    assert cgroup_cpu_quota(v1) is None
    (v1 / "cpu,cpuacct" / "cpu.cfs_quota_us").write_text("400000\n")
    assert cgroup_cpu_quota(v1) == 4.0


def test_physical_cores_count_hyperthreads_once(tmp_path):
    for cpu, (package, core) in enumerate([(0, 0), (0, 1), (0, 0), (0, 1), (1, 0)]):
        topology = tmp_path / f"cpu{cpu}" / "topology"
        topology.mkdir(parents=True)
        (topology / "physical_package_id").write_text(f"{package}\n")
        (topology / "core_id").write_text(f"{core}\n")
    assert physical_cores({0, 1, 2, 3}, tmp_path) == 2
    assert physical_cores({0, 1, 2, 3, 4}, tmp_path) == 3
    assert physical_cores({0, 9}, tmp_path) is None  # unreadable: unknown


@pytest.mark.parametrize("cpus, ranks, workers, threads", [
    (CPUs(2, None, 2, 0.1, 2), 1, 0, 2),          # an idle 2-core machine: torch's default
    (CPUs(2, None, 2, 0.9, 2), 1, 0, 2),          # less than one CPU's worth of other work
    (CPUs(2, None, 2, 4.8, 2), 1, 0, 1),          # issue 13's busy 2-core machine
    (CPUs(2, None, 2, 0.0, 2), 2, 0, 1),          # --nproc 2
    (CPUs(2, None, 2, 0.0, 2), 1, 2, 1),          # two data workers take the CPUs
    (CPUs(16, None, 16, 0.0, 16), 2, 2, 6),       # 8 each, less the 2 workers
    (CPUs(16, None, 16, 0.0, 16), 16, 4, 1),      # never 0
    (CPUs(64, 2.5, 64, 0.0, 32), 1, 0, 3),        # a container's quota (rounded up) caps it
    (CPUs(64, None, 64, 0.0, 32), 1, 0, 32),      # hyperthreads: one thread per physical core
    (CPUs(8, None, 64, 60.2, 8), 1, 0, 4),        # a busy host: 64 - 60 CPUs idle, of 8 allowed
    (CPUs(8, None, 8, None, None), 2, 1, 3),      # no load average, no topology: from the mask
    (CPUs(2, 0.5, 2, 0.0, 2), 1, 0, 1),
])
def test_threads_per_rank_from_affinity_quota_load_ranks_and_workers(cpus, ranks, workers, threads):
    assert threads_per_rank(cpus, ranks, workers) == threads


def test_choose_threads_without_a_user_choice_says_why():
    choice = choose_threads(2, 1, env={}, cpus=CPUs(8, None, 8, 3.4, 8))
    assert choice.threads == 1
    assert choice.line() == ("threads: 1 per process (chosen from 8 usable CPU(s) (affinity 8), 5 idle "
                             "(load average 3.4 on 8) for 2 process(es) with 1 data worker(s) each; "
                             "set train.threads or OMP_NUM_THREADS to override)")
    # the machine's own figures are what it reads without `cpus`
    assert choose_threads(1, 0, env={}).threads == threads_per_rank(CPUs.here())


def test_the_users_choice_wins_config_key_first_then_omp_num_threads():
    cpus = CPUs(8, None, 8, 0.0, 8)
    assert choose_threads(1, 0, env={"OMP_NUM_THREADS": "3"}, cpus=cpus) == ThreadChoice(3, "OMP_NUM_THREADS=3")
    assert choose_threads(1, 0, 5, env={"OMP_NUM_THREADS": "3"}, cpus=cpus) == ThreadChoice(5, "train.threads")
    assert choose_threads(1, 0, 2, key="--threads", env={}, cpus=cpus).line() == "threads: 2 per process (--threads)"
    for junk in ("0", "abc", ""):  # not a number of threads: chosen as if unset
        assert choose_threads(1, 0, env={"OMP_NUM_THREADS": junk}, cpus=cpus).threads == 8
    for bad in (0, -1, True):
        with pytest.raises(ConfigError, match=r"^train\.threads: must be a whole number of at least 1"):
            choose_threads(1, 0, bad, env={}, cpus=cpus)


def test_local_ranks_from_torchrun_or_slurm():
    assert local_ranks({}) == 1
    assert local_ranks({"LOCAL_WORLD_SIZE": "4"}) == 4
    assert local_ranks({"SLURM_NTASKS_PER_NODE": "2(x3)"}) == 2


def test_using_sets_torch_threads_for_the_block_and_restores_them():
    before = torch.get_num_threads()
    with using(ThreadChoice(3, "test")):
        assert torch.get_num_threads() == 3
    assert torch.get_num_threads() == before


def test_training_computes_with_the_chosen_threads_and_logs_them(tmp_path, monkeypatch, capsys, walks_config):
    from tokcore.cli import main
    from tokcore.train import launch

    seen = []

    class Recording:  # the run itself does not matter here: which threads it computes with does
        def __init__(self, *args):
            pass

        def train(self):
            seen.append(torch.get_num_threads())
            return {}

    monkeypatch.setattr(launch, "TrainingRun", Recording)
    cfg = walks_config()
    before = torch.get_num_threads()
    assert main(["train", "--config", str(cfg), "--output", str(tmp_path / "a"), "train.threads=3"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "threads: 3 per process (train.threads)"
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert main(["train", "--config", str(cfg), "--output", str(tmp_path / "b")]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "threads: 2 per process (OMP_NUM_THREADS=2)"
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr(CPUs, "here", classmethod(lambda cls: CPUs(4, None, 4, 1.5, 4)))
    assert main(["train", "--config", str(cfg), "--output", str(tmp_path / "c")]) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith("threads: 3 per process (chosen from 4 usable CPU(s)")
    assert seen == [3, 2, 3]
    assert torch.get_num_threads() == before
    assert main(["train", "--config", str(cfg), "train.threads=0"]) == 2
    assert "train.threads: must be a whole number of at least 1" in capsys.readouterr().err


def test_tokenize_computes_with_the_chosen_threads_and_logs_them(tmp_path, monkeypatch, capsys, walks_config):
    from tokcore.cli import main
    from tokcore.tokens import tokenize

    cfg = walks_config()
    assert main(["train", "--config", str(cfg), "--output", str(tmp_path / "run")]) == 0
    seen = []
    encode = tokenize.encode_group
    monkeypatch.setattr(tokenize, "encode_group", lambda *a: seen.append(torch.get_num_threads()) or encode(*a))
    capsys.readouterr()
    assert main(["tokenize", "--checkpoint", str(tmp_path / "run"), "--output", str(tmp_path / "t1"),
                 "--workers", "0", "--threads", "2"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "threads: 2 per process (--threads)"
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr(CPUs, "here", classmethod(lambda cls: CPUs(4, None, 4, 0.0, 4)))
    assert main(["tokenize", "--checkpoint", str(tmp_path / "run"), "--output", str(tmp_path / "t2"),
                 "--workers", "1"]) == 0
    out = capsys.readouterr().out.splitlines()[0]
    assert out.startswith("threads: 3 per process (chosen from 4 usable CPU(s) (affinity 4) for 1 process(es) "
                          "with 1 data worker(s) each; set --threads or OMP_NUM_THREADS to override)"), out
    assert set(seen) == {2, 3}
