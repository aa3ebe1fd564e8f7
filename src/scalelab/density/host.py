"""Read-only readings of the host (``/proc``, ``/sys``) that the density plan and ramp need.

Nothing here writes: limits, counters and per-process figures only. Every reader takes the
``/proc`` and ``/sys`` roots as arguments so unit tests can point them at a recorded tree.
On Docker Desktop the engine lives in a VM: the daemon processes are not found and their
figures stay ``None`` ("not measured").
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "PROC",
    "SYS",
    "ProcFigures",
    "read_int",
    "meminfo",
    "loadavg",
    "find_process",
    "process_figures",
    "shim_processes",
    "memcg_count",
    "cgroup_version",
    "arp_entries",
    "bridge_ports",
    "inotify_instances",
    "clock_ticks",
    "cgroup_dirs",
    "cgroup_memory_bytes",
]

PROC = Path("/proc")
SYS = Path("/sys")


def read_int(path: Path) -> int | None:
    """The first integer in a file (sysctls, cgroup counters), None when unreadable."""
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def meminfo(proc: Path = PROC) -> dict[str, int]:
    """``/proc/meminfo`` in bytes: ``{"MemTotal": ..., "MemAvailable": ...}``."""
    out: dict[str, int] = {}
    try:
        for line in (proc / "meminfo").read_text().splitlines():
            key, _, rest = line.partition(":")
            parts = rest.split()
            if parts:
                out[key] = int(parts[0]) * (1024 if parts[1:] == ["kB"] else 1)
    except OSError:
        pass
    return out


def loadavg(proc: Path = PROC) -> tuple[float, int]:
    """(1-minute load average, kernel tasks that exist now: the ``148`` of ``8/148``)."""
    fields = (proc / "loadavg").read_text().split()
    return float(fields[0]), int(fields[3].split("/")[1])


def clock_ticks() -> int:
    return os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class ProcFigures:
    """One process: resident memory, proportional share, threads, open fds, CPU seconds so far."""

    pid: int
    rss_bytes: int
    pss_bytes: int | None
    threads: int
    fds: int | None
    cpu_s: float
    nofile_limit: int | None


def _cmdline(pid_dir: Path) -> list[str]:
    try:
        return [a for a in (pid_dir / "cmdline").read_bytes().decode(errors="replace").split("\0") if a]
    except OSError:
        return []


def find_process(name: str, proc: Path = PROC) -> int | None:
    """PID of the first process whose executable name is ``name`` (``dockerd``, ``containerd``)."""
    for pid_dir in sorted(proc.glob("[0-9]*"), key=lambda p: int(p.name)):
        try:
            comm = (pid_dir / "comm").read_text().strip()
        except OSError:
            continue
        if comm == name:
            return int(pid_dir.name)
    return None


def _nofile(pid_dir: Path) -> int | None:
    try:
        for line in (pid_dir / "limits").read_text().splitlines():
            if line.startswith("Max open files"):
                value = line.split()[3]
                return None if value == "unlimited" else int(value)
    except (OSError, IndexError, ValueError):
        pass
    return None


def process_figures(pid: int, proc: Path = PROC, *, with_pss: bool = False) -> ProcFigures | None:
    """Memory, threads, fds and CPU of one process; None when it is gone."""
    pid_dir = proc / str(pid)
    try:
        status = dict(line.split(":", 1) for line in (pid_dir / "status").read_text().splitlines() if ":" in line)
        stat = (pid_dir / "stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    cpu_s = (int(fields[11]) + int(fields[12])) / clock_ticks()  # utime + stime
    try:
        fds: int | None = len(os.listdir(pid_dir / "fd"))
    except OSError:
        fds = None
    pss = None
    if with_pss:
        try:
            for line in (pid_dir / "smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    pss = int(line.split()[1]) * 1024
                    break
        except OSError:
            pass
    rss = int(status.get("VmRSS", "0 kB").split()[0]) * 1024
    return ProcFigures(pid, rss, pss, int(status.get("Threads", "1").split()[0]), fds, cpu_s, _nofile(pid_dir))


def shim_processes(container_ids: set[str], proc: Path = PROC) -> dict[str, int]:
    """container id -> PID of its ``containerd-shim`` (v2 shims name the container with ``-id``)."""
    found: dict[str, int] = {}
    if not container_ids:
        return found
    for pid_dir in proc.glob("[0-9]*"):
        try:
            comm = (pid_dir / "comm").read_text().strip()
        except OSError:
            continue
        if not comm.startswith("containerd-shim"):
            continue
        argv = _cmdline(pid_dir)
        for i, arg in enumerate(argv[:-1]):
            if arg == "-id" and argv[i + 1] in container_ids:
                found[argv[i + 1]] = int(pid_dir.name)
    return found


def memcg_count(proc: Path = PROC) -> int | None:
    """``num_cgroups`` of the memory controller in ``/proc/cgroups`` (each takes a memcg ID)."""
    try:
        for line in (proc / "cgroups").read_text().splitlines():
            parts = line.split()
            if parts and parts[0] == "memory":
                return int(parts[2])
    except (OSError, ValueError, IndexError):
        pass
    return None


def cgroup_version(sys_root: Path = SYS) -> int:
    """2 when ``/sys/fs/cgroup`` is the unified hierarchy, else 1 (v1 or hybrid)."""
    return 2 if (sys_root / "fs" / "cgroup" / "cgroup.controllers").is_file() else 1


def arp_entries(proc: Path = PROC) -> int:
    """IPv4 neighbour entries of this network namespace (what ``ip -4 neigh | wc -l`` counts)."""
    try:
        return max(0, len((proc / "net" / "arp").read_text().splitlines()) - 1)
    except OSError:
        return 0


def bridge_ports(bridge: str, sys_root: Path = SYS) -> int | None:
    """Interfaces attached to a Linux bridge (``/sys/class/net/<bridge>/brif``)."""
    try:
        return len(os.listdir(sys_root / "class" / "net" / bridge / "brif"))
    except OSError:
        return None


def inotify_instances(uid: int = 0, proc: Path = PROC) -> int:
    """inotify instances held by processes of ``uid`` (the count ``max_user_instances`` limits)."""
    count = 0
    for pid_dir in proc.glob("[0-9]*"):
        try:
            if pid_dir.stat().st_uid != uid:
                continue
            names = os.listdir(pid_dir / "fd")
        except OSError:
            continue
        for fd in names:
            try:
                if os.readlink(pid_dir / "fd" / fd) == "anon_inode:inotify":
                    count += 1
            except OSError:
                continue
    return count


def cgroup_dirs(ids: list[str], sys_root: Path = SYS) -> list[str]:
    """Memory cgroup directories still named after one of ``ids`` (``docker/<id>``, ``docker-<id>.scope``)."""
    if not ids:
        return []
    root = sys_root / "fs" / "cgroup"
    if (root / "memory").is_dir():
        root = root / "memory"
    found = []
    wanted = set(ids)
    for parent in (root / "docker", root / "system.slice", root):
        try:
            names = os.listdir(parent)
        except OSError:
            continue
        for name in names:
            core = name.removeprefix("docker-").removesuffix(".scope")
            if core in wanted:
                found.append(str(parent / name))
    return sorted(set(found))


def cgroup_memory_bytes(ids: list[str], sys_root: Path = SYS) -> list[int]:
    """Memory charged to each container's cgroup (``memory.usage_in_bytes`` on v1, ``memory.current`` on v2)."""
    out = []
    for d in cgroup_dirs(ids, sys_root):
        value = read_int(Path(d) / "memory.usage_in_bytes")
        if value is None:
            value = read_int(Path(d) / "memory.current")
        if value is not None:
            out.append(value)
    return out
