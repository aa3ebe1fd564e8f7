"""One second's `Observation` of Docker containers (compose and swarm share it).

The platform knows which containers run (id -> replica name), which are ready, and where each
one runs; this turns that plus the stats streams' readings into the observation the runner records.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from scalelab.engine import stats
from scalelab.platforms.base import Observation, ReplicaStat

__all__ = ["container_observation"]


def container_observation(
    *,
    desired: int,
    names: Mapping[str, str],
    ready: set[str],
    readings: Mapping[str, tuple[float | None, int | None]],
    cpus: float | Mapping[str, float],
    memory_mb: float,
    events: list[dict[str, Any]],
    node_of: Callable[[str], str],
    in_flight: Mapping[str, float | None] | None = None,
) -> Observation:
    """``names``: running container id -> replica name; ``readings``: id -> (cores, memory bytes).

    ``cpus``: the replicas' CPU limit in cores, or id -> limit when they differ (compose's weak replicas).
    """
    cores = [c for c, _ in readings.values() if c is not None]
    mems = [m for _, m in readings.values() if m is not None]
    mem_limit = memory_mb * 2**20
    per_replica = []
    for cid, name in names.items():
        cpu, mem = readings.get(cid, (None, None))
        per_replica.append(ReplicaStat(
            name,
            cid in ready,
            cpu_pct_of_limit=stats.cpu_pct_of_limit(cpu, cpus if isinstance(cpus, (int, float)) else cpus[cid]),
            mem_pct_of_limit=None if mem is None else 100.0 * mem / mem_limit,
            in_flight=(in_flight or {}).get(cid),
        ))
    return Observation(
        replicas_desired=desired,
        replicas_ready=len(ready),
        cpu_cores_used=(sum(cores) if cores else None) if names else 0.0,
        replicas_measured=len(names),
        mem_mb=(sum(mems) / 2**20 if mems else None) if names else 0.0,
        events=events,
        replicas=per_replica,
        # per container: the agent answers with its hostname, the container's short id (the spread's key)
        placement=[
            {"pod": cid[:12], "node": node_of(cid), "phase": "running", "ready": int(cid in ready), "cpu_cores": readings.get(cid, (None, None))[0]}
            for cid in sorted(names)
        ],
    )
