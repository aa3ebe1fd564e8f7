"""Swarm rollouts: ``docker service update --image``, done the way the arm's ``swarm.update_config`` says.

Swarm has rolling updates built in: ``parallelism`` tasks at a time, ``delay`` between batches,
``monitor`` after each, and ``order``: ``stop-first`` (the default: the old task stops, then its
replacement starts) or ``start-first`` (the replacement starts, and the old task stops once it is
running, healthy when the image has a healthcheck) (https://docs.docker.com/reference/compose-file/deploy/#update_config).
The hook sets the image (``--no-resolve-image``: the image is local, there is no registry to ask)
and follows the service's ``UpdateStatus`` until ``completed`` with every task healthy on the new image.
"""

from __future__ import annotations

import dataclasses
import threading
import time

from scalelab.errors import PlatformError
from scalelab.platforms.swarm_state import _docker
from scalelab.rollout.act import Emit, LocalImageRoller
from scalelab.scenario import ArmRollout

__all__ = ["SwarmRoller"]

POLL_S = 0.5


class SwarmRoller(LocalImageRoller):
    def roll(self, image: str, how: ArmRollout, emit: Emit, stop: threading.Event, timeout_s: float) -> str:
        p = self.platform
        service = p.settings.service
        order = p.settings.update_config.get("order", "stop-first")
        p.settings = dataclasses.replace(p.settings, agent_image=image)
        _docker("service", "update", "--detach", "--no-resolve-image", "--image", image, service, timeout_s=60,
                fix=f"look at `docker service ps {service} --no-trunc`")
        emit("rollout", f"docker service update --image {image} ({order}, parallelism {p.settings.update_config.get('parallelism')})")
        deadline = time.monotonic() + timeout_s
        last = ""
        n = p.desired
        while True:
            spec = p.sdk.api.inspect_service(service)
            state = (spec.get("UpdateStatus") or {}).get("State", "")
            healthy = [c for c in p.sdk.api.containers(filters={"label": f"com.docker.swarm.service.name={service}", "status": "running", "health": "healthy"})]
            on_new = sum(1 for c in healthy if c.get("Image") == image)
            line = f"update {state or 'pending'}: {on_new}/{n} healthy on {image}, {len(healthy) - on_new} old"
            if line != last:
                emit("rollout", line)
                last = line
            if state in ("paused", "rollback_started", "rollback_completed", "rollback_paused"):
                raise PlatformError(f"swarm update of {service} {state}: {(spec.get('UpdateStatus') or {}).get('Message', '')}",
                                    fix=f"docker service ps {service} --no-trunc")
            if state == "completed" and on_new >= n and len(healthy) == on_new:
                return f"replicas={on_new} on {image}"
            if stop.is_set() or time.monotonic() > deadline:
                raise PlatformError(f"swarm update of {service} not complete after {timeout_s:.0f} s ({last})", fix=f"docker service ps {service} --no-trunc")
            time.sleep(POLL_S)
