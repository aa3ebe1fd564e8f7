"""The contract every real platform implements, so one runner drives compose and Kubernetes.

The runner (`scalelab.runner`) calls, in order: ``preflight`` (check tools, engine or cluster,
ports, image: raise PreflightError with the fix before anything starts), ``up``,
``wait_ready``, then once a second ``observe`` (and ``scale`` for manual actions), and always
``down`` at the end unless ``--keep``. ``down`` on nothing is a no-op.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = ["Observation", "Platform"]


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


@runtime_checkable
class Platform(Protocol):
    name: str  # "compose" | "kubernetes"
    #: 127.0.0.1 URL that reaches the load balancer / Service, set after ``up``
    base_url: str

    def preflight(self) -> None: ...

    def up(self, replicas: int) -> None: ...

    def wait_ready(self, replicas: int, timeout_s: float) -> None: ...

    def scale(self, replicas: int) -> None: ...

    def observe(self) -> Observation: ...

    def down(self) -> None: ...
