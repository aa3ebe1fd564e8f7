"""Scalers the kit runs itself, the same code in a real run and in the simulator.

Each second (or at its own times) a kit scaler sees a `ScalerView` (desired and ready replicas,
per-replica CPU, memory and in-flight requests) and returns `ScaleDecision`s. The runner
(`scalelab.runner`) and the simulator (`scalelab.sim.scalers`) both call `make_kit_scaler`, so
a decision rule is written once. In-platform scalers (the HPA) are not here: the platform
configures them and the simulator models them (`scalelab.sim.hpa`).
"""

from scalelab.scalers.base import KitScaler, ReplicaStat, ScaleDecision, ScalerView, make_kit_scaler
from scalelab.scalers.manual import Fixed, ManualPlan

__all__ = ["KitScaler", "ReplicaStat", "ScaleDecision", "ScalerView", "make_kit_scaler", "ManualPlan", "Fixed"]
