"""Who decides the replica count in a simulated run: a kit scaler (the same code as real runs) or the HPA model.

Each scaler's ``act(t0, t1, service)`` applies the decisions that fall in ``[t0, t1)`` to the
service (at their exact times) and returns what to record as events. The HPA scaler runs the
metrics-server model and the controller model at their own times: scrapes on the resolution
grid, syncs every ``sync_period + ε`` after the previous one finished, the first one
``sync_period`` after the HPA was created.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from scalelab.scalers import KitScaler, ReplicaStat, ScalerView, make_kit_scaler
from scalelab.scenario import HPAScaler
from scalelab.sim.hpa import ControllerConfig, Decision, HPAController, PodStatus
from scalelab.sim.metrics import MetricsServer
from scalelab.sim.service import Service

__all__ = ["ScalerEvent", "SimScaler", "KitScalerModel", "HPAModel", "make_scaler", "SYNC_EPSILON_S"]

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

    def next_due_s(self) -> float | None:
        """The earliest time ``act`` has something to do (None: never again): ``act(t0, t1)`` for
        a window ending at or before it changes nothing and returns no events, so the engine skips it."""
        ...


class KitScalerModel:
    """A kit scaler (`scalelab.scalers`: manual plan, fixed, ...) acting on the simulated service.

    The same decision code a real run uses: at each of the scaler's due times the service is
    seen as a `ScalerView` and the decisions are applied at their exact times.
    """

    seen_util_pct: int | None = None

    def __init__(self, scaler: KitScaler, limit_cores: float) -> None:
        self.scaler = scaler
        self.limit_cores = limit_cores

    def next_due_s(self) -> float | None:
        return self.scaler.next_due_s()

    def act(self, t0: float, t1: float, service: Service) -> list[ScalerEvent]:
        out: list[ScalerEvent] = []
        due = self.scaler.next_due_s()
        while due is not None and due < t1:
            for d in self.scaler.decide(_view(service, max(due, t0), self.limit_cores)):
                if d.kind == "scale" and d.replicas is not None:
                    service.scale_to(d.replicas, d.t_s)
                out.append(ScalerEvent(d.t_s, d.kind, d.replicas, d.source, d.detail))
            following = self.scaler.next_due_s()
            if following is not None and following <= due:
                break  # a scaler that does not advance acts again next second, never loops here
            due = following
        return out


def _view(service: Service, t_s: float, limit_cores: float) -> ScalerView:
    """The service as a kit scaler sees it: ready flags, and the last second's CPU spread evenly."""
    live = [r for r in service.live() if r.started_s <= t_s]
    busy = service.busy_cores_per_ready()
    idle = service.p.idle_cores

    def pct(ready: bool) -> float | None:
        return 100.0 * (busy + idle if ready else idle) / limit_cores if limit_cores > 0 else None

    stats = tuple(ReplicaStat(r.name, r.ready_s <= t_s, cpu_pct_of_limit=pct(r.ready_s <= t_s)) for r in live)
    ready = [s for s in stats if s.ready]
    return ScalerView(t_s=t_s, desired=service.desired, ready=len(ready), replicas=stats)


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
        self._pod_status: dict[tuple[str, bool, bool], PodStatus] = {}

    def next_due_s(self) -> float | None:
        """The next sync. Scrapes before it are taken then, in time order: a scrape reads the pods'
        cumulative CPU at its own time from the service's history, and the pods change only at
        syncs (scale) or by times fixed when they were created (start, readiness)."""
        return self.next_sync_s

    def act(self, t0: float, t1: float, service: Service) -> list[ScalerEvent]:
        if t1 <= self.next_sync_s and t1 <= self.metrics.next_scrape_s():
            return []  # nothing due in [t0, t1): the common case
        out: list[ScalerEvent] = []
        scrapes = list(self.metrics.due(t1 - 1e-9))
        while True:
            sync = self.next_sync_s if self.next_sync_s < t1 else None
            if scrapes and (sync is None or scrapes[0] <= sync):
                at = scrapes.pop(0)
                self.metrics.scrape_readings(at, self._kubelet(service, at))
                continue
            if sync is None:
                break
            out.extend(self._sync(sync, service))
            self.next_sync_s = sync + self.sync_period_s + self.epsilon_s
        return out

    def _kubelet(self, service: Service, at: float) -> list[tuple[str, float, float]]:
        """What the kubelets report at ``at``: each running pod's (name, start time, cumulative CPU),
        as `ContainerSample` fields (plain tuples: a simulated day scrapes 5,760 times)."""
        running = [r for r in service.live() if r.started_s <= at]
        return [(r.name, r.started_s, cpu) for r, cpu in zip(running, service.cumulative_cpu_all(running, at))]

    def _pods(self, service: Service, now: float) -> list[PodStatus]:
        """The pods as the controller lists them (each status made once: they change only at start and readiness)."""
        pods = []
        cache = self._pod_status
        for r in service.live():
            state = (r.name, r.started_s > now, r.ready_s <= now)
            pod = cache.get(state)
            if pod is None:
                if state[1]:
                    pod = PodStatus(r.name, phase="Pending", start_time=None, ready=None, ready_changed_s=None, request_m=self.request_m)
                else:
                    pod = PodStatus(r.name, "Running", False, r.started_s, state[2], r.ready_s if state[2] else r.started_s, self.request_m)
                cache[state] = pod
            pods.append(pod)
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


def make_scaler(scaler: Any, *, request_m: int, scrape_offset_s: float = 0.0, limit_cores: float = 1.0) -> SimScaler:
    """The simulated scaler of an arm: the HPA model, or the kit scaler itself (errors for an unknown type)."""
    if isinstance(scaler, HPAScaler):
        return HPAModel(scaler, request_m=request_m, scrape_offset_s=scrape_offset_s)
    return KitScalerModel(make_kit_scaler(scaler), limit_cores)
