"""Requests in flight per compose replica, read from each agent's own ``/metrics``.

Once per observation the compose platform asks every running agent container for
``agent_inflight_requests`` (the gauge `scalelab.agent.metrics` keeps: chat requests received and
not yet answered). The agents publish no port, so the request goes to the container's address on
the project's own Docker network (the kit's own containers, nothing else), all containers in
parallel, each bounded by a short timeout: a replica too busy to answer in time counts as not
measured (None) for that second instead of stalling the sampler.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

__all__ = ["InflightReader", "AGENT_PORT", "container_ip", "parse_inflight"]

#: the agent's port inside its container (compose/compose.yaml, nginx.conf)
AGENT_PORT = 8000
#: the whole read (all replicas in parallel) waits at most this long
READ_TIMEOUT_S = 0.4
GAUGE = "agent_inflight_requests"


def parse_inflight(text: str) -> float | None:
    """The ``agent_inflight_requests`` value of a Prometheus text page; None when absent."""
    for line in text.splitlines():
        if line.startswith(GAUGE + " ") or line.startswith(GAUGE + "{"):
            try:
                return float(line.rsplit(" ", 1)[1])
            except (IndexError, ValueError):
                return None
    return None


def container_ip(container: dict[str, Any]) -> str | None:
    """The container's address on its (project) network, from a Docker container listing entry."""
    networks = (container.get("NetworkSettings") or {}).get("Networks") or {}
    for net in networks.values():
        ip = (net or {}).get("IPAddress")
        if ip:
            return str(ip)
    return None


def _fetch(ip: str, port: int, timeout_s: float) -> float | None:
    try:
        with urllib.request.urlopen(f"http://{ip}:{port}/metrics", timeout=timeout_s) as resp:  # noqa: S310 - the kit's own container
            return parse_inflight(resp.read(65536).decode("utf-8", "replace"))
    except (urllib.error.URLError, OSError, ValueError):
        return None


class InflightReader:
    """Reads every agent's in-flight gauge in parallel; ``read`` returns container id -> value (None: no answer in time)."""

    def __init__(self, timeout_s: float = READ_TIMEOUT_S, workers: int = 8, port: int = AGENT_PORT) -> None:
        self.timeout_s = timeout_s
        self.port = port
        self._pool: ThreadPoolExecutor | None = None
        self._workers = workers

    def read(self, containers: list[dict[str, Any]]) -> dict[str, float | None]:
        targets = {str(c["Id"]): container_ip(c) for c in containers}
        if not targets:
            return {}
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="inflight")
        futures = {cid: self._pool.submit(_fetch, ip, self.port, self.timeout_s) for cid, ip in targets.items() if ip}
        wait(list(futures.values()), timeout=self.timeout_s + 0.1)
        return {cid: (futures[cid].result() if cid in futures and futures[cid].done() else None) for cid in targets}

    def stop(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
