"""The scaler contract: what a kit scaler sees, what it decides, and the factory."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from scalelab.errors import ScenarioError
from scalelab.registry import SCALERS, scaler_spec

__all__ = ["ReplicaStat", "ScalerView", "ScaleDecision", "KitScaler", "make_kit_scaler", "KIT_SCALER_MODULES"]


@dataclass(frozen=True)
class ReplicaStat:
    """One replica as a scaler sees it; None = not measured on this platform (or not yet)."""

    name: str
    ready: bool
    cpu_pct_of_limit: float | None = None
    mem_pct_of_limit: float | None = None
    in_flight: float | None = None


@dataclass(frozen=True)
class ScalerView:
    """The observation a kit scaler decides from, at run time ``t_s``."""

    t_s: float
    desired: int
    ready: int
    replicas: tuple[ReplicaStat, ...] = ()


@dataclass(frozen=True)
class ScaleDecision:
    """``kind="scale"``: set the replicas to ``replicas`` at ``t_s``; any other kind is only recorded."""

    t_s: float
    replicas: int | None
    source: str
    detail: str
    kind: str = "scale"


@runtime_checkable
class KitScaler(Protocol):
    #: the ``source`` of its events (manual-plan, threshold, ...)
    source: str

    def next_due_s(self) -> float | None:
        """Run time of the next decision; None when it will never act again."""
        ...

    def decide(self, view: ScalerView) -> list[ScaleDecision]:
        """Decisions due at ``view.t_s`` (called at or after `next_due_s`)."""
        ...

    def override(self, t_s: float, replicas: int) -> None:
        """Someone scaled by hand at ``t_s`` (a live `scalelab scale`): take note."""
        ...


#: scaler type -> "module:Class" taking the scenario's scaler model; new kit scalers add a line here
KIT_SCALER_MODULES: dict[str, str] = {
    "manual": "scalelab.scalers.manual:ManualPlan",
    "fixed": "scalelab.scalers.manual:Fixed",
    "threshold": "scalelab.scalers.threshold:ThresholdAutoscaler",
}


def make_kit_scaler(config: Any) -> KitScaler:
    """The kit scaler for a scenario arm's ``scaler`` block; an error for an in-platform or unknown type."""
    kind = getattr(config, "type", None)
    spec = scaler_spec(str(kind)) if kind in SCALERS else None
    if spec is None:
        raise ScenarioError(f"unknown scaler '{kind}'; allowed: {', '.join(SCALERS)}", fix="set scaler.type to one of them")
    if not spec.kit:
        raise ScenarioError(f"scaler '{kind}' is the platform's own, not one the kit runs", fix="the platform configures it (see registry.PlatformSpec.autoscalers)")
    target = KIT_SCALER_MODULES.get(spec.name)
    if target is None:
        raise ScenarioError(f"scaler '{kind}' has no implementation", fix="add it to scalelab.scalers.base.KIT_SCALER_MODULES")
    module, _, cls = target.partition(":")
    factory = getattr(importlib.import_module(module), cls)
    scaler: KitScaler = factory(config)
    return scaler
