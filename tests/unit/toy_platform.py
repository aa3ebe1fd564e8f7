"""A toy platform for the runner's unit tests: one module, registered with one registry line.

Replicas are plain counters: ``scale`` sets the desired count and they are ready one observation
later. Nothing leaves the process.
"""

from __future__ import annotations

from typing import Any

from scalelab.platforms.base import Observation, PlatformOptions, ReplicaStat, Say
from scalelab.registry import PlatformSpec

SPEC = PlatformSpec(name="toy", module=__name__, summary="replicas as counters (tests only)", sim_start_delay_s=0.5)


class ToyPlatform:
    name = "toy"

    def __init__(self) -> None:
        self.base_url = ""
        self.desired = 0
        self.ready = 0
        self.calls: list[tuple[str, int]] = []
        self.is_down = False
        #: CPU demand in % of one replica's limit, shared by the ready replicas (None: 50 % each)
        self.demand_pct: Any = None
        #: events the next observation reports (e.g. a live scale)
        self.pending_events: list[dict[str, Any]] = []

    def preflight(self) -> None:
        self.calls.append(("preflight", 0))

    def up(self, replicas: int) -> None:
        self.calls.append(("up", replicas))
        self.desired = replicas
        self.base_url = "http://127.0.0.1:9"

    def wait_ready(self, replicas: int, timeout_s: float) -> None:
        self.ready = replicas

    def check_limits(self) -> None:
        pass

    def describe(self) -> dict[str, Any]:
        return {"toy": True}

    def save_rendered(self, run_dir: Any) -> None:
        return None

    def scale(self, replicas: int) -> None:
        self.calls.append(("scale", replicas))
        self.desired = replicas

    def current_replicas(self) -> int:
        return self.desired

    def observe(self) -> Observation:
        ready, self.ready = self.ready, self.desired
        demand = self.demand_pct() if callable(self.demand_pct) else self.demand_pct
        cpu = 50.0 if demand is None else demand / max(ready, 1)
        stats = [ReplicaStat(f"toy-{i}", i < ready, cpu_pct_of_limit=cpu) for i in range(self.desired)]
        events, self.pending_events = self.pending_events, []
        return Observation(self.desired, ready, cpu_cores_used=0.1 * ready, replicas_measured=self.desired, events=events, replicas=stats)

    def down(self) -> None:
        self.calls.append(("down", 0))
        self.is_down = True


class ToyKind:
    spec = SPEC
    made: list[ToyPlatform] = []

    def create(self, scenario: Any, arm: str, *, run_id: str, options: PlatformOptions) -> ToyPlatform:
        plat = ToyPlatform()
        self.made.append(plat)
        return plat

    def attach(self, options: PlatformOptions) -> ToyPlatform:
        return self.made[-1]

    def running(self, options: PlatformOptions) -> list[str]:
        return ["toy"] if self.made and not self.made[-1].is_down else []

    def down_all(self, options: PlatformOptions, say: Say) -> list[str]:
        names = self.running(options)
        for plat in self.made:
            plat.down()
        return names

    def doctor_checks(self) -> list[Any]:
        return []


KIND = ToyKind()
