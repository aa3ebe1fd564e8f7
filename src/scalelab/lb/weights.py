"""Resource-aware weights: move each replica's weight towards equal measured CPU utilisation (pure).

Every update takes each replica's CPU as a percentage of its own limit, averaged since the
previous update, and the utilisation the whole set would have if the load were shared by
capacity: ``target = sum(cpu) / sum(limits)``. A replica above the target gets a smaller weight,
one below a larger one: ``w *= (target / util) ** damping``, each step bounded to
``[1/max_step, max_step]``. At equilibrium every replica runs at the same utilisation, which on
replicas with unequal limits means shares proportional to capacity, found from measurement
alone. Weights are republished (and nginx reloaded) only when one of them moved by more than
``min_change``, so small noise costs no reload. Below ``idle_pct`` there is no signal and the
weights stay where they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["MeasuredWeights"]

TOP = 100.0


@dataclass
class MeasuredWeights:
    damping: float = 0.5
    max_step: float = 2.0
    idle_pct: float = 10.0
    min_change: float = 0.1
    #: the weights as computed (float, the largest 100)
    weights: dict[str, float] = field(default_factory=dict)
    #: the weights nginx has (what `update` returns)
    published: dict[str, int] = field(default_factory=dict)

    def update(self, utils: Mapping[str, float | None], limits: Mapping[str, float]) -> dict[str, int]:
        """New published weights for the replicas in ``limits`` from their utilisation (% of limit; None = not measured)."""
        members = list(limits)
        known = [self.weights[k] for k in members if k in self.weights]
        start = sum(known) / len(known) if known else TOP
        self.weights = {k: self.weights.get(k, start) for k in members}
        measured = {k: float(u) for k, u in utils.items() if k in limits and u is not None and limits[k] > 0}
        if measured:
            capacity = sum(limits[k] for k in measured)
            target = sum(measured[k] * limits[k] for k in measured) / capacity
            if target >= self.idle_pct:
                for k, util in measured.items():
                    factor = (target / max(util, 1.0)) ** self.damping
                    self.weights[k] *= min(self.max_step, max(1.0 / self.max_step, factor))
        top = max(self.weights.values(), default=TOP)
        self.weights = {k: max(1.0, w * TOP / top) for k, w in self.weights.items()}
        if self._moved():
            self.published = {k: max(1, round(w)) for k, w in self.weights.items()}
        return dict(self.published)

    def _moved(self) -> bool:
        if set(self.published) != set(self.weights):
            return True
        return any(abs(w - self.published[k]) > self.min_change * self.published[k] for k, w in self.weights.items())
