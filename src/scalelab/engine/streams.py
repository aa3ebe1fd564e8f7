"""Per-container Docker stats, one background stream per container, read once a second."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

from scalelab.engine import stats

__all__ = ["StatsStream", "StatsStreams", "STATS_FRESH_S"]

#: How old a stats reading may be before it no longer counts as this second's.
STATS_FRESH_S = 3.0


class StatsStream(threading.Thread):
    """Follows ``GET /containers/{id}/stats`` (one document a second) and keeps the latest figures."""

    def __init__(self, container_id: str, docker_host: str = "") -> None:
        super().__init__(name=f"stats-{container_id[:12]}", daemon=True)
        self.container_id = container_id
        self.docker_host = docker_host
        self.latest: tuple[float, float | None, int | None] | None = None  # (monotonic, cores, mem bytes)
        self._client: Any = None
        self._stopped = threading.Event()

    def run(self) -> None:
        import docker

        try:
            self._client = docker.DockerClient(base_url=self.docker_host, timeout=30) if self.docker_host else docker.from_env(timeout=30)
            for doc in self._client.api.stats(self.container_id, stream=True, decode=True):
                if self._stopped.is_set():
                    break
                self.latest = (time.monotonic(), stats.cpu_cores(doc), stats.memory_used_bytes(doc))
        except Exception:  # noqa: BLE001, S110 - the container went away or the stream was closed
            pass
        finally:
            self._close()

    def fresh(self, now: float) -> tuple[float | None, int | None]:
        latest = self.latest
        if latest is None or now - latest[0] > STATS_FRESH_S:
            return None, None
        return latest[1], latest[2]

    def stop(self) -> None:
        self._stopped.set()
        self._close()

    def _close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception:  # noqa: BLE001, S110
                pass


class StatsStreams:
    """One `StatsStream` per running container; ``read`` returns this second's figures by container id."""

    def __init__(self, docker_host: str = "") -> None:
        self._streams: dict[str, StatsStream] = {}
        self.docker_host = docker_host

    def read(self, running: list[str], now: float, base_urls: Mapping[str, str] | None = None) -> dict[str, tuple[float | None, int | None]]:
        """``base_urls``: container id -> the engine that runs it (``unix://`` URL), for containers not on this one's."""
        for cid in list(self._streams):
            if cid not in running:
                self._streams.pop(cid).stop()
        for cid in running:
            if cid not in self._streams:
                stream = StatsStream(cid, (base_urls or {}).get(cid) or self.docker_host)
                stream.start()
                self._streams[cid] = stream
        return {cid: s.fresh(now) for cid, s in self._streams.items()}

    def stop(self) -> None:
        for stream in self._streams.values():
            stream.stop()
        self._streams.clear()
