"""A swarm that spans Docker-in-Docker hosts: start them, join them, watch them, lose one, remove them.

With a scenario's ``hosts:`` the swarm arm runs on several Docker daemons (docs/swarm.md, "Several
hosts"): the engine itself stays the manager (its nginx front door keeps 127.0.0.1) and each host
(`scalelab.hosts.dind`: a container with its own dockerd, capped by the host's CPU and memory)
joins as a worker over the kit's Docker network. The service's tasks run on the workers only
(``node.role==worker``), so replicas per host and CPU per host are what each host really carries.

What the platform asks of this module, once a second: which task containers run (and are healthy)
on which host (each host's own daemon answers; a stopped host answers nothing), the swarm's view
of each node (``ready``/``down``, as ``node`` events when it changes), and one ``hosts.csv`` row per
host (up, replicas, CPU from the host container's cgroup). ``stop`` is the node-loss fault.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from scalelab import _run
from scalelab.errors import CommandError, PlatformError
from scalelab.hosts import dind
from scalelab.hosts.meter import HostMeter
from scalelab.platforms.base import Say
from scalelab.platforms.swarm_state import LAB

__all__ = ["SwarmHosts", "MANAGER_PORT", "node_states", "node_changes"]

#: the manager's port (listened on the kit network's gateway address only)
MANAGER_PORT = 2377
JOIN_TIMEOUT_S = 60.0
#: the node label that says which stack's hosts a worker node is
NODE_LABEL = "scalelab.stack"


def node_states(nodes: Sequence[dict[str, Any]], names: dict[str, str]) -> dict[str, str]:
    """Host name -> the swarm's state of its node (``ready``, ``down``, ``unknown``, ``disconnected``; plus ``drain``/``pause``).

    ``names``: node address -> host name (the address each worker advertised: its IP on the kit network).
    """
    out: dict[str, str] = {}
    for node in nodes:
        status = node.get("Status") or {}
        host = names.get(str(status.get("Addr", "")))
        if host is None:
            continue
        state = str(status.get("State", "unknown"))
        availability = str((node.get("Spec") or {}).get("Availability", "active"))
        out[host] = state if availability == "active" else f"{state}/{availability}"
    return out


def node_changes(before: dict[str, str], now: dict[str, str]) -> list[dict[str, Any]]:
    """``node`` events for every host whose swarm node state changed (or appeared) since ``before``."""
    return [
        {"kind": "node", "replicas": None, "source": "swarm", "detail": f"{host} {state}"}
        for host, state in sorted(now.items()) if before.get(host) != state
    ]


class SwarmHosts:
    """The hosts of one stack (``owner``), from their specs; nothing starts until ``start``."""

    def __init__(self, specs: Sequence[dict[str, Any]], owner: str) -> None:
        self.specs = [dind.HostSpec(s["name"], float(s["cpus"]), int(s["memory_bytes"])) for s in specs]
        self.owner = owner
        self.hosts: list[dind.Host] = []
        self.meter: HostMeter | None = None
        self._clients: dict[str, Any] = {}
        self._stopped: set[str] = set()
        self._nodes: dict[str, str] = {}
        self._lock = threading.Lock()

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.specs]

    # -- life cycle -------------------------------------------------------------------------
    def preflight(self, say: Say | None = None) -> None:
        dind.check_specs(self.specs)
        dind.ensure_host_image(say)

    def start(self, images: Sequence[str], say: Say | None = None) -> None:
        """Start the host containers and load ``images`` into each host's daemon (no registry here)."""
        self.hosts = dind.start_hosts(self.specs, owner=self.owner, progress=say)
        for host in self.hosts:
            dind.load_images(host, images, progress=say)
        self.meter = HostMeter(self.hosts)

    def reattach(self, sdk: Any) -> None:
        """The running hosts of an earlier `start` (``scalelab load``/``scale`` on a stack started by ``scalelab up``)."""
        self.hosts = []
        for spec in self.specs:
            name = dind.container_name(self.owner, spec.name)
            try:
                info = sdk.api.inspect_container(name)
            except Exception:  # noqa: BLE001 - removed: the host is lost for good
                self._stopped.add(spec.name)
                info = {}
            ip = ((info.get("NetworkSettings") or {}).get("Networks") or {}).get(dind.network_name(self.owner), {}).get("IPAddress", "")
            self.hosts.append(dind.Host(spec.name, name, f"unix://{dind.socket_dir(self.owner, spec.name) / dind.SOCKET_NAME}", ip, spec.cpus, spec.memory_bytes))
            if not (info.get("State") or {}).get("Running"):
                self._stopped.add(spec.name)
        self.meter = HostMeter(self.hosts)
        self._nodes = self.states(sdk)

    def manager_addr(self, sdk: Any) -> str:
        """The engine's address on the kit's Docker network (its gateway): what the workers can reach."""
        info = sdk.api.inspect_container(self.hosts[0].container)
        gateways = {n.get("Gateway") for n in (info.get("NetworkSettings", {}).get("Networks") or {}).values()} - {None, ""}
        if len(gateways) != 1:
            raise PlatformError(f"host {self.hosts[0].name}: cannot tell the engine's address on the kit network (gateways: {sorted(gateways)})",
                                fix="`docker inspect` the host container; `scalelab down swarm`", lab=LAB)
        return str(gateways.pop())

    def join(self, sdk: Any, manager: str) -> None:
        """Each host joins the engine's swarm as a worker, advertising its own address on the kit network."""
        token = _run.run(["docker", "swarm", "join-token", "--quiet", "worker"], timeout_s=30).stdout.strip()
        for host in self.hosts:
            self._host_docker(host, "swarm", "join", "--token", token, "--advertise-addr", host.ip, f"{manager}:{MANAGER_PORT}", timeout_s=90)
        want = {h.name for h in self.hosts}

        def joined() -> bool:
            return {h for h, state in self.states(sdk).items() if state == "ready"} >= want

        from scalelab.poll import poll_until

        if not poll_until(joined, timeout_s=JOIN_TIMEOUT_S, interval_s=0.5):
            raise PlatformError(f"hosts {', '.join(sorted(want))} did not all show as ready swarm nodes within {JOIN_TIMEOUT_S:.0f} s: {self.states(sdk)}",
                                fix="`docker node ls`; `scalelab down swarm` removes the hosts", lab=LAB)
        addrs = {h.ip for h in self.hosts}
        for node in _nodes(sdk):  # labelled, so `scalelab down swarm` finds them without the host objects
            if str((node.get("Status") or {}).get("Addr", "")) in addrs:
                _run.run(["docker", "node", "update", "--label-add", f"{NODE_LABEL}={self.owner}", node["ID"]], timeout_s=30)

    def leave_and_remove(self, sdk: Any, *, manager: bool) -> None:
        """Workers leave, their nodes go from the manager's list, the host containers go (``remove_hosts``)."""
        for host in self.hosts:
            if host.name not in self._stopped:
                self._host_docker(host, "swarm", "leave", "--force", timeout_s=30, check=False)
        if manager:
            for node in _nodes(sdk, {"node.label": f"{NODE_LABEL}={self.owner}"}):
                _run.run(["docker", "node", "rm", "--force", node["ID"]], timeout_s=30, check=False)
        self.close()
        self.meter = None
        dind.remove_hosts(self.owner)

    def close(self) -> None:
        for client in self._clients.values():
            try:
                client.close()
            except Exception:  # noqa: BLE001, S110
                pass
        self._clients.clear()

    def stop(self, name: str) -> str:
        """The node-loss fault: stop host ``name``'s container (its daemon and every task on it go at once)."""
        host = self.host(name)
        running = len(self.containers_of(host, label=None))
        with self._lock:
            self._stopped.add(name)
            client = self._clients.pop(name, None)
        if client is not None:
            client.close()
        return f"{dind.stop_host(host)}, {running} containers on it"

    def host(self, name: str) -> dind.Host:
        for host in self.hosts:
            if host.name == name:
                return host
        raise PlatformError(f"no host {name!r} in this swarm; hosts: {', '.join(self.names)}", fix="name one of the scenario's hosts", lab=LAB)

    # -- once a second ----------------------------------------------------------------------
    def states(self, sdk: Any) -> dict[str, str]:
        """Host name -> the swarm's node state (``ready``, ``down``, ...)."""
        return node_states(_nodes(sdk), {h.ip: h.name for h in self.hosts})

    def node_events(self, sdk: Any) -> list[dict[str, Any]]:
        now = self.states(sdk)
        events = node_changes(self._nodes, now)
        self._nodes = {**self._nodes, **now}
        return events

    def containers(self, service: str, *, healthy: bool) -> dict[str, dind.Host]:
        """Container id -> host, for the service's running (``healthy``: and healthy) task containers on every live host."""
        out: dict[str, dind.Host] = {}
        label = f"com.docker.swarm.service.name={service}"
        for host in self.hosts:
            for cid in self.containers_of(host, label=label, healthy=healthy):
                out[cid] = host
        return out

    def containers_of(self, host: dind.Host, *, label: str | None, healthy: bool = False) -> list[str]:
        """Running container ids on ``host``'s own daemon ([] when it does not answer: stopped, or gone)."""
        client = self._client(host)
        if client is None:
            return []
        filters: dict[str, Any] = {"status": "running"}
        if label:
            filters["label"] = label
        if healthy:
            filters["health"] = "healthy"
        try:
            return [c["Id"] for c in client.api.containers(filters=filters)]
        except Exception:  # noqa: BLE001 - the host went away between two looks
            return []

    def rows(self, replicas: dict[str, int]) -> list[dict[str, Any]]:
        """One hosts.csv row per host (without ``t_s``): `scalelab.hosts.meter.HostMeter` (up, replicas, CPU, cap, memory)."""
        return self.meter.rows(replicas) if self.meter is not None else []

    # -- internals ----------------------------------------------------------------------------
    def _client(self, host: dind.Host) -> Any:
        with self._lock:
            if host.name in self._stopped:
                return None
            client = self._clients.get(host.name)
            if client is None:
                import docker

                try:
                    client = docker.DockerClient(base_url=host.docker_host, timeout=5)
                except Exception:  # noqa: BLE001 - no socket: the host is gone
                    return None
                self._clients[host.name] = client
            return client

    def _host_docker(self, host: dind.Host, *args: str, timeout_s: float, check: bool = True) -> str:
        try:
            return _run.run(["docker", *args], env=host.env, timeout_s=timeout_s, check=check,
                            fix="`scalelab down swarm` removes the hosts and the swarm").stdout
        except CommandError as exc:
            raise PlatformError(f"host {host.name}: docker {' '.join(args[:2])} failed: {(exc.stderr or exc.stdout or '').strip()[-400:]}",
                                fix=exc.fix or "`scalelab down swarm`", lab=LAB) from None


def _nodes(sdk: Any, filters: dict[str, str] | None = None) -> list[dict[str, Any]]:
    try:
        found: list[dict[str, Any]] = sdk.api.nodes(filters=filters)
    except Exception:  # noqa: BLE001 - not a manager (any more)
        return []
    return found
