"""Who decides the replica count in a simulated run: a manual plan, the HPA model, or nobody.

Each scaler's ``act(t0, t1, service)`` applies the decisions that fall in ``[t0, t1)`` to the
service (at their exact times) and returns what to record as events. The HPA scaler runs the
metrics-server model and the controller model at their own times: scrapes on the resolution
grid, syncs every ``sync_period + ε`` after the previous one finished, the first one
``sync_period`` after the HPA was created.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from scalelab.scenario import FixedScaler, HPAScaler, ManualScaler
from scalelab.sim.hpa import ControllerConfig, Decision, HPAController, PodStatus
from scalelab.sim.metrics import ContainerSample, MetricsServer
from scalelab.sim.service import Service

__all__ = ["ScalerEvent", "SimScaler", "ManualPlan", "Fixed", "HPAModel", "make_scaler", "SYNC_EPSILON_S"]

#: How long a reconcile takes: the next sync is queued this much after ``sync_period``.
SYNC_EPSILON_S = 0.03


@dataclass(frozen=True)
class ScalerEvent:
    t_s: float
    kind: str  # scale | hpa_rescale | hpa_condition
    replicas: int | None
    source: str
    detail: str


class SimScaler(Protocol):
    #: the utilisation (% of request) the HPA last saw, None without one
    seen_util_pct: int | None

    def act(self, t0: float, t1: float, service: Service) -> list[ScalerEvent]: ...


class Fixed:
    """The replica count never changes."""

    seen_util_pct: int | None = None

    def act(self, t0: float, t1: float, service: Service) -> list[ScalerEvent]:
        return []


class ManualPlan:
    """An operator plan: ``scale --replicas N`` at fixed times."""

    seen_util_pct: int | None = None

    def __init__(self, scaler: ManualScaler) -> None:
        self.actions = sorted((a.at_s, a.replicas) for a in scaler.actions)
        self._next = 0

    def act(self, t0: float, t1: float, service: Service) -> list[ScalerEvent]:
        out: list[ScalerEvent] = []
        while self._next < len(self.actions) and self.actions[self._next][0] < t1:
            at, n = self.actions[self._next]
            self._next += 1
            service.scale_to(n, at)
            out.append(ScalerEvent(at, "scale", n, "manual-plan", f"operator scales to {n}"))
        return out


class HPAModel:
    """metrics-server + the HPA controller acting on the simulated Deployment."""

    def __init__(self, scaler: HPAScaler, *, request_m: int, created_s: float = 0.0, scrape_offset_s: float = 0.0,
                 epsilon_s: float = SYNC_EPSILON_S, controller: ControllerConfig | None = None) -> None:
        self.cfg = controller or ControllerConfig.from_scaler(scaler)
        self.controller = HPAController(self.cfg)
        self.metrics = MetricsServer(scaler.metric_resolution_s, scrape_offset_s)
        self.sync_period_s = scaler.sync_period_s
        self.epsilon_s = epsilon_s
        self.next_sync_s = created_s + scaler.sync_period_s
        self.request_m = request_m
        self.seen_util_pct: int | None = None
        self.decisions: list[Decision] = []
        self._conditions: dict[str, tuple[bool, str]] = {}

    def act(self, t0: float, t1: float, service: Service) -> list[ScalerEvent]:
        if t1 <= self.next_sync_s and t1 <= self.metrics.next_scrape_s():
            return []  # nothing due in [t0, t1): the common case
        out: list[ScalerEvent] = []
        scrapes = list(self.metrics.due(t1 - 1e-9))
        while True:
            sync = self.next_sync_s if self.next_sync_s < t1 else None
            if scrapes and (sync is None or scrapes[0] <= sync):
                at = scrapes.pop(0)
                self.metrics.scrape(at, self._kubelet(service, at))
                continue
            if sync is None:
                break
            out.extend(self._sync(sync, service))
            self.next_sync_s = sync + self.sync_period_s + self.epsilon_s
        return out

    def _kubelet(self, service: Service, at: float) -> list[ContainerSample]:
        return [ContainerSample(r.name, r.started_s, service.cumulative_cpu_s(r, at)) for r in service.live() if r.started_s <= at]

    def _pods(self, service: Service, now: float) -> list[PodStatus]:
        pods = []
        for r in service.live():
            if r.started_s > now:
                pods.append(PodStatus(r.name, phase="Pending", start_time=None, ready=None, ready_changed_s=None, request_m=self.request_m))
                continue
            ready = r.ready_s <= now
            pods.append(PodStatus(r.name, "Running", False, r.started_s, ready, r.ready_s if ready else r.started_s, self.request_m))
        return pods

    def _sync(self, now: float, service: Service) -> list[ScalerEvent]:
        current = service.desired
        d = self.controller.reconcile_cpu(now, current, self._pods(service, now), self.metrics.pod_metrics())
        self.decisions.append(d)
        if d.utilization_pct is not None:
            self.seen_util_pct = d.utilization_pct
        out = []
        for name, state in d.conditions.items():
            if self._conditions.get(name) != state:
                self._conditions[name] = state
                out.append(ScalerEvent(now, "hpa_condition", None, "hpa", f"{name}={state[0]} {state[1]}"))
        if d.rescaled:
            service.scale_to(d.desired, now)
            out.append(ScalerEvent(now, "hpa_rescale", d.desired, "hpa", d.event_message))
        return out


def make_scaler(scaler: ManualScaler | HPAScaler | FixedScaler, *, request_m: int, scrape_offset_s: float = 0.0) -> SimScaler:
    if isinstance(scaler, ManualScaler):
        return ManualPlan(scaler)
    if isinstance(scaler, HPAScaler):
        return HPAModel(scaler, request_m=request_m, scrape_offset_s=scrape_offset_s)
    return Fixed()
