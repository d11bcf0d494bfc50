"""How many CPUs a process may use, and how many intra-op threads each rank computes with.

torch starts as many intra-op (OpenMP) threads as the machine has cores, whoever else runs
there: the other ranks of the same run, their DataLoader workers, other jobs. Every parallel
operator then waits for all its threads, so when some of them are not scheduled a step waits
for a time slice: on a busy 2-core machine the walks example took 5 min 10 s for 300 steps
with torch's 2 threads and 14.8 s with one (issue 13). So each run chooses its threads:

    usable   = the CPUs of the affinity mask (taskset, SLURM, cpusets), capped by the cgroup
               CPU quota (a container's --cpus, rounded up)
    idle     = usable, less the CPUs the machine's other work keeps busy (the whole part of
               the 1-minute load average); at least 1
    compute  = idle, at most one per physical core (torch's own default)
    per rank = compute // ranks on this machine, less one CPU per DataLoader worker; at least 1

unless the user chose: a config key (`train.threads`, tokenize's `threads` option) first, then
`OMP_NUM_THREADS`. The choice is made once, before the ranks start (they would otherwise count
one another in the load), and printed as one line of the run's log.
"""

from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping

from tokcore.errors import ConfigError

CGROUP = Path("/sys/fs/cgroup")


def cgroup_cpu_quota(root: Path = CGROUP) -> float | None:
    """The CPUs' worth of time this cgroup may use (cgroup v2 `cpu.max`, or v1
    `cpu.cfs_quota_us` / `cpu.cfs_period_us`); None when there is no quota."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    for d in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):
        try:
            quota_us = int((root / d / "cpu.cfs_quota_us").read_text())
            period_us = int((root / d / "cpu.cfs_period_us").read_text())
        except (OSError, ValueError):
            continue
        return quota_us / period_us if quota_us > 0 and period_us > 0 else None
    return None


def physical_cores(cpus: set[int], root: Path = Path("/sys/devices/system/cpu")) -> int | None:
    """The physical cores the logical CPUs `cpus` belong to (hyperthreads share one), from
    sysfs; None when the topology is not readable."""
    cores = set()
    try:
        for c in cpus:
            topology = root / f"cpu{c}" / "topology"
            cores.add(((topology / "physical_package_id").read_text().strip(), (topology / "core_id").read_text().strip()))
    except OSError:
        return None
    return len(cores) or None


@dataclass(frozen=True)
class CPUs:
    """What this process may compute on.

    Args:
        affinity: logical CPUs in the process's affinity mask.
        quota: the cgroup's CPU quota in CPUs, None for none.
        online: logical CPUs of the machine (what the load average counts against).
        load: the machine's 1-minute load average, None when unknown.
        cores: physical cores of the affinity mask's CPUs, None when unknown (torch's own
            default is one thread per physical core: hyperthreads do not add compute).
    """

    affinity: int
    quota: float | None = None
    online: int | None = None
    load: float | None = None
    cores: int | None = None

    @classmethod
    def here(cls) -> "CPUs":
        try:
            mask = os.sched_getaffinity(0)
        except (AttributeError, OSError):  # not Linux
            mask = set(range(os.cpu_count() or 1))
        try:
            load: float | None = os.getloadavg()[0]
        except (AttributeError, OSError):
            load = None
        return cls(len(mask), cgroup_cpu_quota(), os.cpu_count() or len(mask), load, physical_cores(mask))

    @property
    def usable(self) -> int:
        """The CPUs this process may use: the affinity mask capped by the quota (rounded up)."""
        if self.quota is None:
            return max(1, self.affinity)
        return max(1, min(self.affinity, math.ceil(self.quota - 1e-9)))

    @property
    def idle(self) -> int:
        """The usable CPUs that other work does not already keep busy (at least 1): a CPU
        counts as busy for each whole unit of the load average beyond the machine's CPUs."""
        if self.load is None or self.online is None:
            return self.usable
        return max(1, min(self.usable, self.online - int(self.load)))

    @property
    def compute(self) -> int:
        """The idle CPUs, at most one per physical core."""
        return max(1, min(self.idle, self.cores or self.idle))

    def limits(self) -> str:
        """What sets `usable`: "affinity 8, cgroup quota 2.5"."""
        return f"affinity {self.affinity}" + (f", cgroup quota {self.quota:g}" if self.quota is not None else "")

    def describe(self) -> str:
        """"8 usable CPUs (affinity 8), 4 physical cores, 3 idle (load average 5.2 on 8)"."""
        text = f"{self.usable} usable CPU(s) ({self.limits()})"
        if self.cores is not None and self.cores < self.idle:
            text += f", {self.cores} physical core(s)"
        if self.idle < self.usable:
            text += f", {self.idle} idle (load average {self.load:.1f} on {self.online})"
        return text


def threads_per_rank(cpus: CPUs, ranks: int = 1, workers: int = 0) -> int:
    """Intra-op threads for each of `ranks` processes on this machine, each with `workers`
    DataLoader workers (a worker computes on one thread: torch sets that)."""
    return max(1, cpus.compute // max(1, ranks) - max(0, workers))


@dataclass(frozen=True)
class ThreadChoice:
    threads: int
    why: str

    def line(self) -> str:
        """The run log's line."""
        return f"threads: {self.threads} per process ({self.why})"


def _positive_int(text: str | None) -> int | None:
    try:
        n = int(str(text).strip())
    except ValueError:
        return None
    return n if n >= 1 else None


def local_ranks(env: Mapping[str, str] | None = None) -> int:
    """Processes of this run on this machine, as torchrun (LOCAL_WORLD_SIZE) or SLURM
    (SLURM_NTASKS_PER_NODE, e.g. "4" or "4(x2)") says; 1 otherwise."""
    env = os.environ if env is None else env
    for name in ("LOCAL_WORLD_SIZE", "SLURM_NTASKS_PER_NODE"):
        if n := _positive_int(env.get(name, "").split("(")[0]):
            return n
    return 1


def choose_threads(ranks: int = 1, workers: int = 0, requested: int | None = None, *, key: str = "train.threads",
                   env: Mapping[str, str] | None = None, cpus: CPUs | None = None) -> ThreadChoice:
    """The intra-op threads of each rank: `requested` (the config key `key`), else
    OMP_NUM_THREADS, else `threads_per_rank` of this machine's CPUs."""
    env = os.environ if env is None else env
    if requested is not None:
        if not isinstance(requested, int) or isinstance(requested, bool) or requested < 1:
            raise ConfigError(f"must be a whole number of at least 1, or null to choose from the CPUs; got {requested!r}",
                              key=key)
        return ThreadChoice(requested, f"{key}")
    if n := _positive_int(env.get("OMP_NUM_THREADS")):
        return ThreadChoice(n, f"OMP_NUM_THREADS={n}")
    cpus = cpus or CPUs.here()
    n = threads_per_rank(cpus, ranks, workers)
    return ThreadChoice(n, f"chosen from {cpus.describe()} for {ranks} process(es) with {workers} data worker(s) "
                           f"each; set {key} or OMP_NUM_THREADS to override")


@contextlib.contextmanager
def using(choice: ThreadChoice) -> Iterator[ThreadChoice]:
    """torch computes with `choice.threads` intra-op threads inside the block (restored after:
    a Python caller's own setting is theirs)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(choice.threads)
    try:
        yield choice
    finally:
        torch.set_num_threads(before)
