"""The operator's plan (scale to N at fixed times) and the fixed replica count."""

from __future__ import annotations

from typing import Any

from scalelab.scalers.base import ScaleDecision, ScalerView

__all__ = ["ManualPlan", "Fixed"]


class ManualPlan:
    """``scale --replicas N`` at the plan's times; a live scale typed by hand does not change the plan."""

    source = "manual-plan"

    def __init__(self, config: Any) -> None:
        self.actions = sorted((float(a.at_s), int(a.replicas)) for a in getattr(config, "actions", ()))
        self._next = 0

    def next_due_s(self) -> float | None:
        return self.actions[self._next][0] if self._next < len(self.actions) else None

    def decide(self, view: ScalerView) -> list[ScaleDecision]:
        out = []
        while self._next < len(self.actions) and self.actions[self._next][0] <= view.t_s:
            at, n = self.actions[self._next]
            self._next += 1
            out.append(ScaleDecision(at, n, self.source, f"operator plan: scale to {n}"))
        return out

    def override(self, t_s: float, replicas: int) -> None:
        return None


class Fixed:
    """The replica count never changes."""

    source = "fixed"

    def __init__(self, config: Any = None) -> None:
        pass

    def next_due_s(self) -> float | None:
        return None

    def decide(self, view: ScalerView) -> list[ScaleDecision]:
        return []

    def override(self, t_s: float, replicas: int) -> None:
        return None
