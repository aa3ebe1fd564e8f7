"""The contract every real platform implements, so one runner and one set of verbs drive them all.

Two objects per platform:

- a `Platform` is one deployment of one scenario arm. The runner (`scalelab.runner`) calls, in
  order: ``preflight`` (check tools, engine or cluster, ports, image: raise PreflightError with
  the fix before anything starts), ``up``, ``wait_ready``, ``check_limits``, then once a
  second ``observe`` (and ``scale`` for the scaler's decisions), and always ``down`` at the end
  unless ``--keep``. ``down`` on nothing is a no-op.
- a `PlatformKind` is the platform's whole life on this machine: make a `Platform` for a run,
  attach to the one started by hand (`scalelab up/scale/load`), list and remove everything the
  kit started (`scalelab down`, `scalelab clean`), and add its own `scalelab doctor` checks.

A platform module defines ``KIND`` and is named by one line in `scalelab.registry`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from scalelab.registry import PlatformSpec
from scalelab.scalers.base import ReplicaStat

__all__ = ["lifecycle_events", "Observation", "Platform", "PlatformKind", "PlatformOptions", "ReplicaStat", "Say"]

Say = Callable[[str], None]


@dataclass
class Observation:
    """What a platform saw at one instant; the runner adds request stats and cost."""

    replicas_desired: int
    replicas_ready: int
    cpu_cores_used: float | None = None
    #: how many replicas ``cpu_cores_used`` covers (running containers/pods, ready or not)
    replicas_measured: int | None = None
    mem_mb: float | None = None
    hpa_util_pct: float | None = None
    hpa_desired: int | None = None
    #: events since the previous observation: dicts with keys kind, replicas, source, detail
    events: list[dict[str, Any]] = field(default_factory=list)
    #: per replica: placement rows (pod, node, phase, ready, cpu_cores); ``pod`` is the name the
    #: replica answers requests with (pod name; a compose container's short id)
    placement: list[dict[str, Any]] = field(default_factory=list)
    #: per-replica figures for kit scalers (empty when the platform does not measure them)
    replicas: list[ReplicaStat] = field(default_factory=list)
    #: per host (a scenario's ``hosts:``): rows of hosts.csv without ``t_s`` (`scalelab.hosts.meter.HostMeter`)
    hosts: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class PlatformOptions:
    """Where and which: every platform reads the fields it needs and ignores the rest."""

    #: compose: the 127.0.0.1 port of the front door
    port: int | None = None
    #: kubernetes: the kubeconfig file and context (default: kind's, else the current one)
    kubeconfig: str | None = None
    context: str | None = None
    #: a running deployment started by the kit (compose project, namespace); None = the only one
    project: str | None = None


@runtime_checkable
class Platform(Protocol):
    name: str
    #: 127.0.0.1 URL that reaches the front door, set after ``up`` (or ``attach``)
    base_url: str

    def preflight(self) -> None: ...

    def up(self, replicas: int) -> None: ...

    def wait_ready(self, replicas: int, timeout_s: float) -> None: ...

    def check_limits(self) -> None:
        """Fail when what runs does not have the CPU limit the scenario asked for."""
        ...

    def describe(self) -> dict[str, Any]:
        """What actually runs, for the run manifest (``platform_info``)."""
        ...

    def save_rendered(self, run_dir: Path) -> Path | None:
        """Write what was applied (manifests, compose file as interpolated) into the run directory."""
        ...

    def scale(self, replicas: int) -> None: ...

    def current_replicas(self) -> int:
        """The replica count the platform is set to now (cheap; no events consumed)."""
        ...

    def observe(self) -> Observation: ...

    def down(self) -> None: ...


@runtime_checkable
class PlatformKind(Protocol):
    spec: PlatformSpec

    def create(self, scenario: Any, arm: str, *, run_id: str, options: PlatformOptions) -> Platform:
        """A new deployment of one arm of a sized scenario (nothing starts until ``up``)."""
        ...

    def attach(self, options: PlatformOptions) -> Platform:
        """The running deployment the kit started (``options.project``, or the only one); PlatformError if none."""
        ...

    def running(self, options: PlatformOptions) -> list[str]:
        """Names of the deployments the kit started that exist now."""
        ...

    def down_all(self, options: PlatformOptions, say: Say) -> list[str]:
        """Remove everything the kit started on this platform (or only ``options.project``); returns names."""
        ...

    def doctor_checks(self) -> list[Any]:
        """Extra `scalelab.doctor.Check`s of this platform (beyond the spec's ``doctor_needs``)."""
        ...


def lifecycle_events(seen_running: dict[str, str], seen_ready: set[str], running: dict[str, str], ready: set[str], source: str) -> list[dict[str, Any]]:
    """Start, ready and stop events between two looks at a platform's replicas (id -> name, ready ids)."""
    events: list[dict[str, Any]] = []
    for rid, name in running.items():
        if rid not in seen_running:
            events.append({"kind": "replica_start", "replicas": len(running), "source": source, "detail": name})
    for rid in sorted(ready - seen_ready):
        events.append({"kind": "replica_ready", "replicas": len(ready), "source": source, "detail": running[rid]})
    for rid, name in seen_running.items():
        if rid not in running:
            events.append({"kind": "replica_stop", "replicas": len(running), "source": source, "detail": name})
    return events
