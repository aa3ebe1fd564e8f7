"""Compose on Host A: a scenario's ``hosts:`` for the compose platform (`scalelab.hosts.dind`).

`docker compose` talks to ONE Docker daemon. With hosts, that daemon is Host A's own (the first
host): the project (agents and the nginx front door) runs there, every replica shares Host A's
CPU cap, and the front door is reached on 127.0.0.1 through the port Host A's outer container
publishes. The other hosts start too, get the images and are sampled: they sit idle, which is
the point (lab 09). Stopping a host (fault ``node-loss``) stops its outer container; nothing
moves the replicas of a lost Host A anywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from scalelab.errors import PlatformError
from scalelab.hosts import dind
from scalelab.hosts.meter import HostMeter
from scalelab.hosts.spec import HostSpec

__all__ = ["ComposeHosts"]


class ComposeHosts:
    """The hosts of one compose run: started in ``up``, sampled in ``observe``, removed in ``down``."""

    def __init__(self, specs: Sequence[HostSpec], owner: str) -> None:
        self.specs = list(specs)
        self.owner = owner
        self.hosts: list[dind.Host] = []
        self.meter: HostMeter | None = None
        self.lost: set[str] = set()

    @property
    def first(self) -> HostSpec:
        return self.specs[0]

    @property
    def docker_host(self) -> str:
        """Host A's daemon, as DOCKER_HOST (known before it starts: a socket in the kit's cache)."""
        return f"unix://{dind.socket_dir(self.owner, self.first.name) / dind.SOCKET_NAME}"

    def preflight(self) -> None:
        dind.check_specs(self.specs)

    def start(self, *, port: int, images: Sequence[str], mounts: Sequence[Path], say: Any = None) -> None:
        """Start every host (Host A publishes ``port`` on 127.0.0.1) and load ``images`` into Host A."""
        self.hosts = dind.start_hosts(self.specs, owner=self.owner, progress=say, publish={self.first.name: [port]}, mounts=mounts)
        dind.load_images(self.hosts[0], images, progress=say)
        self.meter = HostMeter(self.hosts)

    def rows(self, replicas_on_first: int) -> list[dict[str, Any]]:
        if self.meter is None:
            return []
        return self.meter.rows({self.first.name: replicas_on_first})

    def first_up(self) -> bool:
        return bool(self.hosts) and self.first.name not in self.lost

    def stop(self, name: str) -> str:
        host = next((h for h in self.hosts if h.name == name), None)
        if host is None:
            raise PlatformError(f"no host called {name} runs; hosts: {', '.join(h.name for h in self.hosts) or 'none'}",
                                fix="name one of the scenario's hosts in faults[].host")
        self.lost.add(name)
        return dind.stop_host(host)

    def remove(self) -> list[str]:
        self.meter = None
        return dind.remove_hosts(self.owner)

    def describe(self) -> dict[str, Any]:
        return {
            "hosts": [{"name": h.name, "cpus": h.cpus, "memory_bytes": h.memory_bytes, "container": h.container, "ip": h.ip} for h in self.hosts],
            "hosts_image": dind.HOST_IMAGE,
            "compose_host": self.first.name,
        }
