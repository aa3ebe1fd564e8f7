"""Inject a scenario's faults into a running platform: one small hook per platform.

What each kind means, per platform (docs/faults.md has the why):

========  ===============================  ===============================  ===============================
kind      compose                          swarm                            kubernetes
========  ===============================  ===============================  ===============================
kill      ``docker kill`` (SIGKILL through ``docker kill`` of the task's    delete the pod with grace
          the API: Docker marks it         container (the swarm agent sees  period 0 (the kubelet SIGKILLs
          stopped by hand, so no restart   its task fail and schedules a    its container; the ReplicaSet
          policy brings it back)           replacement)                     creates a replacement)
crash     ``kill -9`` of the container's   the same, on the task's          ``kill -9`` of the container's
          main process from the host,      container                        main process from the host (the
          outside the API (the restart                                      kubelet restarts it in place,
          policy sees a crash)                                              with back-off)
hang      ``kill -STOP`` of the main       the same, on the task's          the same, on the pod's container
          process from the host (the port  container (its healthcheck       (the liveness probe fails; the
          still accepts connections,       fails; swarm replaces the task)  kubelet restarts it in place)
          nothing answers; the
          healthcheck fails: "unhealthy")
========  ===============================  ===============================  ===============================

``node-loss`` (a scenario with ``hosts:``) stops a whole host, named by the fault's ``host``: the
platform's ``stop_host(name) -> str`` does it and says how (compose: ``docker stop`` of that
Docker-in-Docker host, `scalelab.hosts.dind.stop_host`; Kubernetes on kind: ``docker kill`` of
that host's worker node container, `scalelab.platforms.kind_hosts`); a platform that implements it adds
``node-loss`` to its kinds in `SUPPORTED`.

The victim of the others is one ready replica, chosen by the scenario's seed and the fault's index, so the
same schedule picks the same position on every platform; ``target: same`` hits the replica the
previous fault hit, ready or not (a crash loop). `check_supported` runs before anything starts
and lists what a platform can do.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from scalelab import _run
from scalelab.errors import PlatformError, ScenarioError

__all__ = ["Injected", "Injector", "INJECTORS", "FaultSchedule", "injector_for", "check_supported", "SUPPORTED", "pick", "host_pid_of_container"]

#: the fault kinds each platform's hook implements
SUPPORTED: dict[str, tuple[str, ...]] = {"compose": ("kill", "crash", "hang", "node-loss"), "swarm": ("kill", "crash", "hang", "node-loss"), "kubernetes": ("kill", "crash", "hang", "node-loss")}


@dataclass(frozen=True)
class Injected:
    """What was done: the replica's name as it answers requests, and how."""

    kind: str
    replica: str
    how: str
    #: node-loss: the host that stopped (then ``replica`` is empty)
    host: str = ""

    def detail(self) -> str:
        if self.host:
            return f"{self.kind} host={self.host} {self.how}"
        return f"{self.kind} replica={self.replica} {self.how}"


class Injector(Protocol):
    def inject(self, kind: str, index: int, victim: str | None = None) -> Injected:
        """Fault ``kind`` into one ready replica (or into ``victim``, the previous fault's replica)."""
        ...


def pick(names: Sequence[str], seed: int, index: int) -> str:
    """The victim among ``names`` (sorted first, so the choice depends only on seed and index)."""
    if not names:
        raise PlatformError("no ready replica to inject a fault into", fix="start the fault later (faults[].at_s), when replicas are ready")
    return random.Random(seed * 1000 + index).choice(sorted(names))


def check_supported(platform: str, kinds: Sequence[str], source: str = "the scenario") -> None:
    """ScenarioError listing the allowed kinds when ``platform`` cannot inject one of ``kinds``."""
    allowed = SUPPORTED.get(platform, ())
    bad = sorted({k for k in kinds if k not in allowed})
    if bad:
        raise ScenarioError(
            f"{source}: faults of kind {', '.join(bad)} cannot be injected on {platform}; allowed there: {', '.join(allowed) or 'none'}",
            fix=f"remove those entries from faults:, or run an arm on a platform that has them ({_where(bad)})",
        )


def _where(kinds: Sequence[str]) -> str:
    return "; ".join(f"{k}: {', '.join(p for p, ks in SUPPORTED.items() if k in ks) or 'none yet'}" for k in kinds)


def injector_for(platform: Any, seed: int) -> Injector:
    """The platform's hook (`INJECTORS`, by platform name)."""
    make = INJECTORS.get(platform.name)
    if make is None:
        raise ScenarioError(f"faults cannot be injected on {platform.name}", fix=f"remove faults: from the scenario; platforms with faults: {', '.join(SUPPORTED)}")
    return make(platform, seed)


def _host_kill(signal: str, pid: str, what: str, prefix: Sequence[str] = ()) -> None:
    """``kill -SIGNAL pid`` on this machine, or (``prefix``: ``docker exec <host container>``) in a kit host's process table."""
    if not pid.isdigit() or pid == "0":
        raise PlatformError(f"{what} has no host process id ({pid!r})", fix="crash and hang need the host's process table (a local Linux engine or cluster)")
    _run.run([*prefix, "kill", f"-{signal}", pid], timeout_s=10, fix="crash and hang need the host's process table (a local Linux engine or cluster, as root)")


class DockerInjector:
    """compose and swarm: the agents are containers of this machine's Docker engine (`containers` lists the ready ones)."""

    def __init__(self, platform: Any, seed: int) -> None:
        self.platform = platform
        self.seed = seed

    def containers(self, *, healthy: bool) -> list[dict[str, Any]]:
        raise NotImplementedError

    def inject(self, kind: str, index: int, victim: str | None = None) -> Injected:
        if victim is None:
            ready = {c["Id"][:12]: c for c in self.containers(healthy=True)}
            short = pick(list(ready), self.seed, index)
        else:
            ready = {c["Id"][:12]: c for c in self.containers(healthy=False)}
            short = victim[:12]
            if short not in ready:
                raise PlatformError(f"replica {victim} (the previous fault's) does not run now", fix="target: same needs the replica back first; fault later")
        cid, name = ready[short]["Id"], ready[short]["Names"][0].lstrip("/")
        # compose on a kit host (a scenario's hosts:): Host A's daemon, and pids of Host A's process table
        env: dict[str, str] = getattr(self.platform, "docker_env", {})
        prefix: list[str] = getattr(self.platform, "pid_exec", [])
        if kind == "kill":
            _run.run(["docker", "kill", "--signal", "KILL", cid], timeout_s=30, env=env)
            how = f"docker kill {name}"
        elif kind == "crash":
            pid = _run.run(["docker", "inspect", "--format", "{{.State.Pid}}", cid], timeout_s=30, env=env).stdout.strip()
            _host_kill("9", pid, f"container {name}", prefix)
            how = f"kill -9 of host pid {pid} ({name})"
        elif kind == "hang":
            # SIGSTOP, not `docker pause`: a paused container runs no healthcheck either, so nothing would
            # ever call it unhealthy; a stopped process is a real hang (the healthcheck runs and times out)
            pid = _run.run(["docker", "inspect", "--format", "{{.State.Pid}}", cid], timeout_s=30, env=env).stdout.strip()
            _host_kill("STOP", pid, f"container {name}", prefix)
            how = f"kill -STOP of host pid {pid} ({name})"
        else:  # pragma: no cover - the scenario model allows only the kinds above
            raise ScenarioError(f"unknown fault kind {kind}", fix=f"use one of {', '.join(SUPPORTED['compose'])}")
        return Injected(kind, short, how)


class ComposeInjector(DockerInjector):
    def containers(self, *, healthy: bool) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.platform._containers(running_only=True, healthy_only=healthy)
        return found


class SwarmInjector(DockerInjector):
    """The service's task containers; a task's replica name (its hostname) is its container id's first 12 characters.

    Swarm replaces a failed task with a new container in the same slot (``<service>.<slot>``), so
    ``target: same`` hits the task now running in the previous victim's slot.
    """

    def __init__(self, platform: Any, seed: int) -> None:
        super().__init__(platform, seed)
        self._slot_of: dict[str, str] = {}

    def containers(self, *, healthy: bool) -> list[dict[str, Any]]:
        filters = {"label": f"com.docker.swarm.service.name={self.platform.settings.service}", "status": "running", **({"health": "healthy"} if healthy else {})}
        found: list[dict[str, Any]] = self.platform.sdk.api.containers(filters=filters)
        for c in found:
            self._slot_of[c["Id"][:12]] = _slot(c)
        return found

    def inject(self, kind: str, index: int, victim: str | None = None) -> Injected:
        if victim is not None:
            slot = self._slot_of.get(victim[:12], "")
            now = [c["Id"][:12] for c in self.containers(healthy=False) if slot and _slot(c) == slot]
            if not now:
                raise PlatformError(f"no task runs in slot {slot or '?'} of replica {victim} now (Swarm has not started its replacement yet)",
                                    fix="target: same needs the slot's new task running; fault later")
            victim = now[0]
        return super().inject(kind, index, victim)


def _slot(container: dict[str, Any]) -> str:
    """``<service>.<slot>`` from a task container's ``com.docker.swarm.task.name`` label (``<service>.<slot>.<task id>``)."""
    name = str((container.get("Labels") or {}).get("com.docker.swarm.task.name", ""))
    return name.rsplit(".", 1)[0] if name.count(".") >= 2 else ""


def host_pid_of_container(container_id: str, proc: Path = Path("/proc")) -> int | None:
    """The host pid of a container's main process, found by its id in ``/proc/<pid>/cgroup``.

    Works wherever the container's processes are in this machine's process table: the kit's test
    cluster (containerd on the host) and kind (node containers of the local engine). The main
    process is the one whose parent is not in the container (its parent is the runtime's shim).
    """
    members: dict[int, int] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if container_id not in (entry / "cgroup").read_text(encoding="utf-8"):
                continue
            members[int(entry.name)] = _ppid((entry / "status").read_text(encoding="utf-8"))
        except OSError:  # gone meanwhile, or not ours to read
            continue
    roots = sorted(pid for pid, ppid in members.items() if ppid not in members)
    return roots[0] if roots else None


def _ppid(status: str) -> int:
    for line in status.splitlines():
        if line.startswith("PPid:"):
            return int(line.split()[1])
    return 0


def _container_id(pod: dict[str, Any]) -> str:
    """The agent container's runtime id (``containerd://<id>`` without the scheme) when it runs, else ""."""
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        if cs.get("name") == "ai-agent" and (cs.get("state") or {}).get("running"):
            return str(cs.get("containerID") or "").rpartition("://")[2]
    return ""


class KubernetesInjector:
    def __init__(self, platform: Any, seed: int) -> None:
        self.platform = platform
        self.seed = seed

    def _pods(self) -> list[dict[str, Any]]:
        from kubernetes import client

        from scalelab.platforms.k8s_client import raw

        core = client.CoreV1Api(self.platform.api)
        pods: list[dict[str, Any]] = raw(core.list_namespaced_pod, self.platform.namespace, label_selector="app.kubernetes.io/name=ai-agent", timeout_s=5.0).get("items") or []
        return pods

    def inject(self, kind: str, index: int, victim: str | None = None) -> Injected:
        from kubernetes import client

        from scalelab.platforms.k8s_status import pod_view

        pods = {str((p.get("metadata") or {}).get("name")): p for p in self._pods()}
        if victim is None:
            victim = pick([v.name for v in map(pod_view, pods.values()) if v.ready and not v.deleting], self.seed, index)
        elif victim not in pods:
            raise PlatformError(f"pod {victim} (the previous fault's) is gone", fix="target: same needs the same pod; use target: one")
        if kind == "kill":
            client.CoreV1Api(self.platform.api).delete_namespaced_pod(victim, self.platform.namespace, grace_period_seconds=0, _request_timeout=10)
            return Injected(kind, victim, f"delete pod {victim} --grace-period=0")
        cid = _container_id(pods[victim])
        if not cid:
            raise PlatformError(f"pod {victim}: its agent container does not run now (waiting, or in back-off)", fix="fault later, once it runs again")
        pid = host_pid_of_container(cid)
        if pid is None:
            raise PlatformError(f"pod {victim}: no process of container {cid[:12]} on this machine",
                                fix="crash and hang on Kubernetes need the cluster's nodes on this machine (the kit's test cluster, or kind); kill works anywhere")
        signal, verb = ("9", "kill -9") if kind == "crash" else ("STOP", "kill -STOP")
        _host_kill(signal, str(pid), f"pod {victim}")
        return Injected(kind, victim, f"{verb} of host pid {pid} (pod {victim}, container {cid[:12]})")


#: platform name -> its hook; a new platform adds one line here and its kinds to `SUPPORTED`
INJECTORS: dict[str, Callable[[Any, int], Injector]] = {"compose": ComposeInjector, "swarm": SwarmInjector, "kubernetes": KubernetesInjector}


class FaultSchedule:
    """A scenario's faults in time order; the runner fires each at its ``at_s``."""

    def __init__(self, faults: Sequence[Any], platform: Any, seed: int) -> None:
        self.platform = platform
        self.seed = seed
        self._pending = sorted(enumerate(faults), key=lambda item: (item[1].at_s, item[0]))
        self._injector: Injector | None = None
        self._last: str | None = None

    def __bool__(self) -> bool:
        return bool(self._pending)

    def check(self, source: str) -> None:
        check_supported(self.platform.name, [f.kind for _, f in self._pending], source)
        _check_targets([f for _, f in self._pending], source)

    def next_due_s(self) -> float | None:
        return self._pending[0][1].at_s if self._pending else None

    def fire_next(self) -> Injected:
        index, fault = self._pending.pop(0)
        if fault.kind == "node-loss":
            return Injected(fault.kind, "", self.platform.stop_host(fault.host), host=fault.host)
        if self._injector is None:
            self._injector = injector_for(self.platform, self.seed)
        if getattr(fault, "target", "one") == "same":
            if self._last is None:
                raise PlatformError("target: same, but no earlier fault hit a replica", fix="put a fault with target: one first")
            done = self._injector.inject(fault.kind, index, victim=self._last)
        else:
            done = self._injector.inject(fault.kind, index)
        self._last = done.replica
        return done


def _check_targets(faults: Iterable[Any], source: str) -> None:
    first = next(iter(faults), None)
    if first is not None and getattr(first, "target", "one") == "same":
        raise ScenarioError(f"{source}: the first fault has target: same, but there is no earlier fault whose replica it could hit",
                            fix="give the first fault (in time order) target: one")
