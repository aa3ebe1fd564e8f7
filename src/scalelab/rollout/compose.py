"""Compose rollouts: what `docker compose` does with a new image, and the 2x trick (docs/rollouts.md).

- ``recreate``: ``docker compose up -d`` with the new image, as an operator would type it.
  Compose stops each old container (SIGTERM, then SIGKILL after ``stop_grace_period``), removes
  it and starts its replacement; it has no start-first order, so for a while nothing serves.
- ``double-then-retire`` (what wowu/docker-rollout automates): scale the service to twice its
  replicas with ``--no-recreate`` (the new containers get the new image, the old ones are left
  alone), wait until the new ones are healthy, then ``docker stop`` the old ones (SIGTERM: the
  agent drains what it is serving) and remove them. nginx resolves the service name once a
  second and retries a refused connection on the next address, so no request should be lost.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any

from scalelab import _run
from scalelab.errors import PlatformError
from scalelab.platforms.compose_settings import SERVICE
from scalelab.rollout.act import Emit, LocalImageRoller
from scalelab.scenario import ArmRollout

__all__ = ["ComposeRoller"]

POLL_S = 0.25


class ComposeRoller(LocalImageRoller):
    def _agents(self, healthy: bool = False) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.platform._containers(running_only=True, healthy_only=healthy)
        return found

    def _up(self, *flags: str, replicas: int) -> None:
        self.platform._compose("up", "--detach", "--quiet-pull", "--pull", "never", "--no-deps", *flags, "--scale", f"{SERVICE}={replicas}", SERVICE,
                               fix="`scalelab down compose` and start again", timeout_s=300.0)

    def roll(self, image: str, how: ArmRollout, emit: Emit, stop: threading.Event, timeout_s: float) -> str:
        p = self.platform
        old = {c["Id"] for c in self._agents()}
        n = p.desired or len(old)
        p.settings = dataclasses.replace(p.settings, agent_image=image)  # later `scale` calls use the new image too
        if how.strategy == "recreate":
            emit("rollout", f"docker compose up -d with {image}: compose recreates the {n} replicas")
            self._up(replicas=n)
            emit("rollout", "docker compose up returned: old replicas removed, new ones started")
            self._wait_healthy(image, n, exclude=set(), emit=emit, stop=stop, timeout_s=min(timeout_s, how.health_timeout_s))
            return f"replicas={n} on {image}"
        emit("rollout", f"scale to {2 * n} with --no-recreate: {n} new replicas on {image} beside the {len(old)} old ones")
        self._up("--no-recreate", replicas=2 * n)
        try:
            self._wait_healthy(image, n, exclude=old, emit=emit, stop=stop, timeout_s=min(timeout_s, how.health_timeout_s))
        except PlatformError:
            fresh = [c["Id"] for c in self._agents() if c["Id"] not in old]
            emit("rollout", f"giving up: removing the {len(fresh)} new replicas, the old ones keep serving")
            self._retire(fresh)
            raise
        emit("rollout", f"{n} new replicas healthy; stopping the {len(old)} old ones (SIGTERM, drain)")
        self._retire(sorted(old))
        emit("rollout", f"old replicas stopped and removed; {len(self._agents())} running")
        return f"replicas={n} on {image}"

    def _wait_healthy(self, image: str, n: int, *, exclude: set[str], emit: Emit, stop: threading.Event, timeout_s: float) -> None:
        """Until ``n`` healthy containers run ``image`` (and are not in ``exclude``); PlatformError after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        seen = -1
        while True:
            fresh = [c for c in self._agents(healthy=True) if c["Id"] not in exclude and c.get("Image") == image]
            if len(fresh) != seen:
                seen = len(fresh)
                if seen:
                    emit("rollout", f"{seen}/{n} replicas on {image} healthy")
            if seen >= n:
                return
            if stop.is_set() or time.monotonic() > deadline:
                raise PlatformError(f"{seen}/{n} replicas on {image} healthy after {timeout_s:.0f} s",
                                    fix="raise arms.<arm>.rollout.health_timeout_s, or look at `docker compose ps` (health: starting?)")
            time.sleep(POLL_S)

    def _retire(self, ids: list[str]) -> None:
        """``docker stop`` (the container's own stop timeout: compose's stop_grace_period), then ``docker rm``."""
        if not ids:
            return
        _run.run(["docker", "stop", *ids], timeout_s=120, fix="remove them by hand: docker rm -f <id>")
        _run.run(["docker", "rm", *ids], timeout_s=60, fix="remove them by hand: docker rm -f <id>")
