"""The benchmarks' CPU cap: a share as a CFS quota, and the throttling counters read back."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

CPUS = Path(__file__).resolve().parent.parent / "benchmarks" / "_cpus.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_cpus", CPUS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_cpus"] = module
    spec.loader.exec_module(module)
    return module


cpus = _load()


def test_a_share_is_a_quota_per_period_in_either_cgroup_version() -> None:
    """5 % of a core is 5 ms of every 100 ms period: v1's two files, or v2's ``cpu.max``."""
    cap = cpus.CpuCap(0.05)
    assert cap.files(1) == {"cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": "5000"}
    assert cap.files(2) == {"cpu.max": "5000 100000"}
    assert cpus.CpuCap(1.5).files(2) == {"cpu.max": "150000 100000"}


@pytest.mark.parametrize("share", [0.0, -1.0, 0.005])
def test_a_share_the_kernel_cannot_enforce_is_refused(share: float) -> None:
    """No cap of 0 or less, nor one below the kernel's 1 ms minimum quota."""
    with pytest.raises(ValueError, match="share"):
        cpus.CpuCap(share)


def test_throttling_reads_both_versions_cpu_stat() -> None:
    """v1 counts the throttled time in ns, v2 in us; the share is of periods with work."""
    v1 = "nr_periods 40\nnr_throttled 30\nthrottled_time 1500000000\nnr_bursts 0\n"
    v2 = "usage_usec 9\nnr_periods 40\nnr_throttled 30\nthrottled_usec 1500000\n"
    for text in (v1, v2):
        got = cpus.parse_cpu_stat(text)
        assert (got.periods, got.throttled, got.throttled_s) == (40, 30, 1.5)
        assert got.throttled_share == 0.75
    assert (cpus.parse_cpu_stat(v1) - cpus.Throttling(10, 10, 0.5)).throttled_share == 20 / 30


def test_cpu_mounts_finds_v1_cpu_and_every_v2_mount() -> None:
    """cpu or cpu,cpuacct v1 mounts first (a controller is in one hierarchy only), not cpuset."""
    mountinfo = (
        "31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n"
        "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
        "34 31 0:31 / /sys/fs/cgroup/cpuset rw - cgroup cgroup rw,cpuset\n"
        "41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n"
    )
    assert cpus.cpu_mounts(mountinfo) == [
        (1, Path("/sys/fs/cgroup/cpu,cpuacct")),
        (2, Path("/sys/fs/cgroup/unified")),
    ]
