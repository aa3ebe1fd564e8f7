"""Inject a scenario's faults into a running platform: one small hook per platform.

What each kind means, per platform (docs/faults.md has the why):

========  ==========================================  =========================================
kind      compose                                     kubernetes
========  ==========================================  =========================================
kill      ``docker kill`` (SIGKILL through the API:   delete the pod with grace period 0 (the
          Docker marks it stopped by hand, so no      kubelet SIGKILLs its container; the
          restart policy brings it back)              ReplicaSet creates a replacement)
crash     ``kill -9`` of the container's main         --
          process from the host, outside the API
          (the restart policy sees a crash)
hang      ``docker pause`` (cgroup freezer: the       --
          port still accepts connections, nothing
          answers)
========  ==========================================  =========================================

The victim is one ready replica, chosen by the scenario's seed and the fault's index, so the
same schedule picks the same position on every platform. `check_supported` runs before anything
starts and lists what a platform can do.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from scalelab import _run
from scalelab.errors import PlatformError, ScenarioError

__all__ = ["Injected", "Injector", "INJECTORS", "FaultSchedule", "injector_for", "check_supported", "SUPPORTED", "pick"]

#: the fault kinds each platform's hook implements
SUPPORTED: dict[str, tuple[str, ...]] = {"compose": ("kill", "crash", "hang"), "kubernetes": ("kill",)}


@dataclass(frozen=True)
class Injected:
    """What was done: the replica's name as it answers requests, and how."""

    kind: str
    replica: str
    how: str

    def detail(self) -> str:
        return f"{self.kind} replica={self.replica} {self.how}"


class Injector(Protocol):
    def inject(self, kind: str, index: int) -> Injected: ...


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


class ComposeInjector:
    def __init__(self, platform: Any, seed: int) -> None:
        self.platform = platform
        self.seed = seed

    def inject(self, kind: str, index: int) -> Injected:
        ready = {c["Id"][:12]: c for c in self.platform._containers(healthy_only=True)}
        short = pick(list(ready), self.seed, index)
        cid, name = ready[short]["Id"], ready[short]["Names"][0].lstrip("/")
        if kind == "kill":
            _run.run(["docker", "kill", "--signal", "KILL", cid], timeout_s=30)
            how = f"docker kill {name}"
        elif kind == "crash":
            pid = _run.run(["docker", "inspect", "--format", "{{.State.Pid}}", cid], timeout_s=30).stdout.strip()
            if not pid.isdigit() or pid == "0":
                raise PlatformError(f"container {name} has no host process id ({pid!r})", fix="crash needs a local Linux Docker engine")
            _run.run(["kill", "-9", pid], timeout_s=10, fix="crash needs the host's process table (a local Linux engine, as root)")
            how = f"kill -9 of host pid {pid} ({name})"
        elif kind == "hang":
            _run.run(["docker", "pause", cid], timeout_s=30)
            how = f"docker pause {name}"
        else:  # pragma: no cover - the scenario model allows only the kinds above
            raise ScenarioError(f"unknown fault kind {kind}", fix=f"use one of {', '.join(SUPPORTED['compose'])}")
        return Injected(kind, short, how)


class KubernetesInjector:
    def __init__(self, platform: Any, seed: int) -> None:
        self.platform = platform
        self.seed = seed

    def inject(self, kind: str, index: int) -> Injected:
        from kubernetes import client

        from scalelab.platforms.k8s_client import raw
        from scalelab.platforms.k8s_status import pod_view

        core = client.CoreV1Api(self.platform.api)
        ns = self.platform.namespace
        pods = raw(core.list_namespaced_pod, ns, label_selector="app.kubernetes.io/name=ai-agent", timeout_s=5.0).get("items") or []
        ready = [v.name for v in map(pod_view, pods) if v.ready and not v.deleting]
        victim = pick(ready, self.seed, index)
        if kind != "kill":  # pragma: no cover - check_supported runs first
            raise ScenarioError(f"fault kind {kind} is not implemented on kubernetes", fix="use kill")
        core.delete_namespaced_pod(victim, ns, grace_period_seconds=0, _request_timeout=10)
        return Injected(kind, victim, f"delete pod {victim} --grace-period=0")


#: platform name -> its hook; a new platform adds one line here and its kinds to `SUPPORTED`
INJECTORS: dict[str, Callable[[Any, int], Injector]] = {"compose": ComposeInjector, "kubernetes": KubernetesInjector}


class FaultSchedule:
    """A scenario's faults in time order; the runner fires each at its ``at_s``."""

    def __init__(self, faults: Sequence[Any], platform: Any, seed: int) -> None:
        self.platform = platform
        self.seed = seed
        self._pending = sorted(enumerate(faults), key=lambda item: (item[1].at_s, item[0]))
        self._injector: Injector | None = None

    def __bool__(self) -> bool:
        return bool(self._pending)

    def check(self, source: str) -> None:
        check_supported(self.platform.name, [f.kind for _, f in self._pending], source)

    def next_due_s(self) -> float | None:
        return self._pending[0][1].at_s if self._pending else None

    def fire_next(self) -> Injected:
        index, fault = self._pending.pop(0)
        if self._injector is None:
            self._injector = injector_for(self.platform, self.seed)
        return self._injector.inject(fault.kind, index)
