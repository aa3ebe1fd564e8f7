"""Docker stats arithmetic: CPU (cores and % of a limit) and memory from one stats document.

A document is what the Engine API returns for ``GET /containers/{id}/stats`` (one element of the
stream): ``cpu_stats`` and ``precpu_stats`` (the previous read), ``memory_stats``. The formulas
are the Docker CLI's (https://github.com/docker/cli/blob/master/cli/command/container/stats_helpers.go). Pure functions,
no I/O, so they are tested on recorded documents (tests/fixtures/docker-stats-*.json).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["cpu_cores", "cpu_pct_of_limit", "memory_used_bytes", "nano_cpus_to_cores"]


def _online_cpus(cpu_stats: Mapping[str, Any]) -> int:
    online = cpu_stats.get("online_cpus") or 0
    if online:
        return int(online)
    percpu = (cpu_stats.get("cpu_usage") or {}).get("percpu_usage") or []
    return len(percpu)


def cpu_cores(stats: Mapping[str, Any]) -> float | None:
    """Cores used between the previous read and this one (1.0 = one full core); None if unknown.

    ``cpu_delta / system_delta * online_cpus``: the Docker CLI's CPU % divided by 100. None when
    the document has no previous read (the first of a stream, or ``one_shot``).
    """
    cur = stats.get("cpu_stats") or {}
    pre = stats.get("precpu_stats") or {}
    try:
        cpu_delta = cur["cpu_usage"]["total_usage"] - pre["cpu_usage"]["total_usage"]
        system_delta = cur["system_cpu_usage"] - pre["system_cpu_usage"]
    except (KeyError, TypeError):
        return None
    ncpu = _online_cpus(cur)
    if system_delta <= 0 or ncpu <= 0:
        return None
    return max(0.0, cpu_delta / system_delta * ncpu)


def cpu_pct_of_limit(cores: float | None, limit_cores: float) -> float | None:
    """Cores used as a percentage of the replica's CPU limit (100 = at the limit)."""
    if cores is None or limit_cores <= 0:
        return None
    return cores / limit_cores * 100.0


def memory_used_bytes(stats: Mapping[str, Any]) -> int | None:
    """Memory in use the way ``docker stats`` shows it: usage minus inactive page cache."""
    mem = stats.get("memory_stats") or {}
    usage = mem.get("usage")
    if usage is None:
        return None
    detail = mem.get("stats") or {}
    # cgroup v1 reports total_inactive_file, cgroup v2 inactive_file.
    inactive = detail.get("total_inactive_file", detail.get("inactive_file", 0)) or 0
    return int(usage - inactive) if inactive < usage else int(usage)


def nano_cpus_to_cores(nano_cpus: int | None) -> float | None:
    """``HostConfig.NanoCpus`` (what compose's ``cpus:`` sets) in cores; None when unlimited."""
    if not nano_cpus:
        return None
    return nano_cpus / 1e9
