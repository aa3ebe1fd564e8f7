"""Cost arithmetic: replica-seconds x price per replica-hour. Pure functions, no I/O."""

from __future__ import annotations

from typing import Any

__all__ = ["CostMeter", "cost_usd"]


def cost_usd(replica_seconds: Any, price_per_replica_hour: float) -> Any:
    """Dollars for ``replica_seconds`` (a number, or a numpy array of them) at a price per replica-hour."""
    return replica_seconds * price_per_replica_hour / 3600.0


class CostMeter:
    """Accumulates replica-seconds as samples arrive; ``add`` returns the cumulative cost."""

    def __init__(self, price_per_replica_hour: float) -> None:
        self.price = price_per_replica_hour
        self.replica_seconds = 0.0

    def add(self, replicas: float, dt_s: float = 1.0) -> float:
        self.replica_seconds += max(0.0, replicas) * dt_s
        return self.total

    @property
    def total(self) -> float:
        return cost_usd(self.replica_seconds, self.price)
