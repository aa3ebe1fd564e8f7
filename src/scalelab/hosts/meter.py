"""Per host and second: up, replicas, cores used, its cap and memory: the rows of ``hosts.csv``.

Every platform with hosts (compose on Host A, Swarm over several, Kubernetes workers) calls
`HostMeter.rows` once a second from its ``observe`` and puts the rows in `Observation.hosts`;
the runner adds ``t_s`` and writes them (`scalelab.telemetry.schema.HOST_COLUMNS`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

__all__ = ["HostMeter", "Usage"]


class _Capped(Protocol):
    name: str
    cpus: float


#: (CPU seconds used in total, memory bytes in use) of a host, or None when it is not running
Usage = Callable[[Any], tuple[float, int] | None]


class HostMeter:
    """Turns cumulative CPU seconds into cores per second, host by host (the first reading has none)."""

    def __init__(self, hosts: Sequence[_Capped], usage: Usage | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        if usage is None:
            from scalelab.hosts.dind import host_usage

            usage = host_usage
        self.hosts = list(hosts)
        self.usage: Usage = usage
        self.clock = clock
        self._prev: dict[str, tuple[float, float]] = {}  # name -> (monotonic, cpu seconds)

    def rows(self, replicas: Mapping[str, int]) -> list[dict[str, Any]]:
        """One row per host (without ``t_s``); ``replicas``: host name -> replicas running there now."""
        out = []
        for host in self.hosts:
            now = self.clock()
            reading = self.usage(host)
            cores = mem = None
            if reading is None:
                self._prev.pop(host.name, None)
            else:
                cpu_s, mem = reading
                prev = self._prev.get(host.name)
                if prev is not None and now > prev[0]:
                    cores = max(0.0, (cpu_s - prev[1]) / (now - prev[0]))
                self._prev[host.name] = (now, cpu_s)
            out.append({
                "host": host.name,
                "up": int(reading is not None),
                "replicas": int(replicas.get(host.name, 0)) if reading is not None else 0,
                "cpu_cores": cores,
                "cpu_limit_cores": host.cpus,
                "mem_bytes": mem,
            })
        return out
