"""Pinning benchmark processes to CPUs, so a client and the server it measures never share one.

On this 2-core machine, a load generator and a server left to the scheduler sometimes land on
the same CPU, and the extra work of one side then slows the other: a ratio measured that way
says more about the scheduler than about the code. Each benchmark with a server in a child
process pins itself to ``CLIENT_CPU`` and the server to ``SERVER_CPU``. Where pinning is not
available (one CPU, not Linux), nothing changes.

``CpuCaps`` gives a process a fixed CPU share, as a container's CPU limit does: a child cgroup
of the cpu controller (cgroup v1's CFS quota, or v2's ``cpu.max``) per process. It never
pretends: where no such group can be made and capped, it raises ``CpuCapUnavailable`` naming
what is missing.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CLIENT_CPU",
    "SERVER_CPU",
    "CpuCap",
    "CpuCapUnavailable",
    "CpuCaps",
    "Throttling",
    "cpu_mounts",
    "parse_cpu_stat",
    "pin",
    "unpin",
]

CLIENT_CPU = 0
SERVER_CPU = 1


def pin(cpu: int, pid: int = 0) -> None:
    """Keep process ``pid`` (0: this one) on ``cpu``, when the machine has two CPUs or more."""
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(pid, {cpu})


def unpin(pid: int = 0) -> None:
    """Let process ``pid`` (0: this one) run on any CPU again."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(pid, range(os.cpu_count() or 1))


# --- CPU caps: a worker process given a fixed CPU share, as a container's CPU limit does ---

CAP_PERIOD_US = 100_000
"""The CFS period of a cap: the period Docker's ``--cpus`` and Kubernetes' CPU limits use."""
MIN_QUOTA_US = 1_000
"""The kernel refuses a CFS quota below 1 ms."""
GROUP_PREFIX = "wixinv-bench"


class CpuCapUnavailable(RuntimeError):
    """No cgroup cpu controller this process can create child groups in and write caps to."""


@dataclass(frozen=True)
class CpuCap:
    """A CPU share (cores, 0.05 = 5 % of one core) as a CFS quota per period."""

    share: float
    period_us: int = CAP_PERIOD_US

    def __post_init__(self) -> None:
        if not self.share > 0:
            raise ValueError(f"a CPU share must be above 0, not {self.share}")
        if self.quota_us < MIN_QUOTA_US:
            raise ValueError(
                f"a share of {self.share} is a quota of {self.quota_us} us per "
                f"{self.period_us} us period, below the kernel's minimum of {MIN_QUOTA_US} us"
            )

    @property
    def quota_us(self) -> int:
        return round(self.share * self.period_us)

    def files(self, version: int) -> dict[str, str]:
        """What to write into a child cgroup of cgroup ``version`` (1 or 2) to set the cap."""
        if version == 1:
            return {
                "cpu.cfs_period_us": str(self.period_us),
                "cpu.cfs_quota_us": str(self.quota_us),
            }
        return {"cpu.max": f"{self.quota_us} {self.period_us}"}


@dataclass(frozen=True)
class Throttling:
    """A cgroup's ``cpu.stat`` bandwidth counters: CFS periods in which it had work, those in
    which it used up its quota and waited, and the time it spent waiting."""

    periods: int = 0
    throttled: int = 0
    throttled_s: float = 0.0

    def __add__(self, other: Throttling) -> Throttling:
        return Throttling(
            self.periods + other.periods,
            self.throttled + other.throttled,
            self.throttled_s + other.throttled_s,
        )

    def __sub__(self, other: Throttling) -> Throttling:
        return Throttling(
            self.periods - other.periods,
            self.throttled - other.throttled,
            self.throttled_s - other.throttled_s,
        )

    @property
    def throttled_share(self) -> float:
        """Of the periods with work, the share that ended throttled."""
        return self.throttled / self.periods if self.periods else 0.0


def parse_cpu_stat(text: str) -> Throttling:
    """``cpu.stat`` of cgroup v1 (``throttled_time``, ns) or v2 (``throttled_usec``)."""
    stat = dict(line.split() for line in text.splitlines() if line.strip())
    if "throttled_usec" in stat:
        throttled_s = int(stat["throttled_usec"]) / 1e6
    else:
        throttled_s = int(stat["throttled_time"]) / 1e9
    return Throttling(int(stat["nr_periods"]), int(stat["nr_throttled"]), throttled_s)


def cpu_mounts(mountinfo: str) -> list[tuple[int, Path]]:
    """From ``/proc/self/mountinfo``: the cgroup v1 mounts with the cpu controller, as
    ``(1, mount point)``, then every cgroup v2 mount, as ``(2, mount point)`` (whether v2 has
    the cpu controller is in its ``cgroup.controllers``)."""
    v1, v2 = [], []
    for line in mountinfo.splitlines():
        mount, _, fs = line.partition(" - ")
        fields, fs_fields = mount.split(), fs.split()
        if len(fields) < 5 or len(fs_fields) < 3:
            continue
        point = Path(fields[4].replace("\\040", " "))
        if fs_fields[0] == "cgroup" and "cpu" in fs_fields[2].split(","):
            v1.append((1, point))
        elif fs_fields[0] == "cgroup2":
            v2.append((2, point))
    return v1 + v2


class CpuCaps:
    """Child cgroups of the cpu controller, one per process capped, removed on exit.

    Each group is made under the top of the hierarchy this process sees (cgroup v1's cpu mount,
    or a v2 mount with the cpu controller, which is then enabled for its children), given the
    cap, checked by reading it back, and given the process. On exit every process still in a
    group is moved back to the parent and the groups are removed, also after an error.
    """

    def __init__(self, cap: CpuCap, mountinfo: Path = Path("/proc/self/mountinfo")) -> None:
        self.cap = cap
        self.version, self.root = _writable_hierarchy(mountinfo)
        self.groups: list[Path] = []

    def __enter__(self) -> CpuCaps:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def add(self, pid: int) -> Path:
        """A new capped group holding process ``pid`` (all its threads)."""
        group = self.root / f"{GROUP_PREFIX}-{os.getpid()}-{len(self.groups)}"
        group.mkdir()
        self.groups.append(group)
        for name, value in self.cap.files(self.version).items():
            (group / name).write_text(value)
        _check_cap(group, self.version, self.cap)
        (group / "cgroup.procs").write_text(str(pid))
        return group

    @staticmethod
    def throttling(group: Path) -> Throttling:
        return parse_cpu_stat((group / "cpu.stat").read_text())

    def remove(self) -> None:
        errors = []
        for group in reversed(self.groups):
            try:
                for pid in (group / "cgroup.procs").read_text().split():
                    with contextlib.suppress(ProcessLookupError):
                        (self.root / "cgroup.procs").write_text(pid)
                group.rmdir()
            except OSError as error:
                errors.append(f"{group}: {error}")
        self.groups.clear()
        if errors:
            raise OSError("cgroups left behind (rmdir them by hand): " + "; ".join(errors))


def _check_cap(group: Path, version: int, cap: CpuCap) -> None:
    """Read the cap back, so a group the kernel did not cap is never taken as capped."""
    got = {name: (group / name).read_text().strip() for name in cap.files(version)}
    if got != cap.files(version):
        raise CpuCapUnavailable(f"{group}: wrote {cap.files(version)}, read back {got}")


def _writable_hierarchy(mountinfo: Path) -> tuple[int, Path]:
    """The cgroup version and the directory to make capped groups in, or why there is none."""
    try:
        mounts = cpu_mounts(mountinfo.read_text())
    except OSError as error:
        raise CpuCapUnavailable(f"cannot read {mountinfo} to find the cgroups: {error}") from None
    tried = []
    for version, point in mounts:
        if version == 2:
            controllers = (point / "cgroup.controllers").read_text().split()
            if "cpu" not in controllers:
                tried.append(f"{point} (cgroup v2: no cpu in cgroup.controllers)")
                continue
        try:
            _probe(version, point)
        except OSError as error:
            tried.append(f"{point} (cgroup v{version}: {error})")
            continue
        return version, point
    raise CpuCapUnavailable(
        "capping a worker's CPU needs the cgroup cpu controller, writable by this process: a "
        "cgroup v1 mount with the cpu controller (cpu.cfs_quota_us) or a cgroup v2 mount with "
        "cpu in cgroup.controllers (cpu.max); "
        + ("tried: " + "; ".join(tried) if tried else "there is no such mount in " + str(mountinfo))
    )


def _probe(version: int, point: Path) -> None:
    """Make, cap and remove a group under ``point`` (v2: enabling cpu for its children)."""
    if version == 2:
        control = point / "cgroup.subtree_control"
        if "cpu" not in control.read_text().split():
            control.write_text("+cpu")
    probe = point / f"{GROUP_PREFIX}-{os.getpid()}-probe"
    probe.mkdir()
    try:
        cap = CpuCap(0.5)
        for name, value in cap.files(version).items():
            (probe / name).write_text(value)
        _check_cap(probe, version, cap)
    finally:
        probe.rmdir()
