"""A faithful model of the HorizontalPodAutoscaler controller (autoscaling/v2, CPU utilisation).

Follows ``/work/shared/docs/hpa-controller.md`` (the 1.33-1.36 controller code), section numbers
in the comments refer to it. Pure computation: the caller gives the pods as the controller would
list them and the metrics as metrics.k8s.io would serve them; `HPAController.reconcile` returns
the decision with its conditions and event. Times are float seconds on the run's clock.

Things that must be exact and are: integer-percent truncation; ``spec.replicas`` vs the ready
count; strict "after" on every behavior window (inclusive cutoff on the legacy path);
``periodStart`` accounting; Percent scale-down truncation; the legacy vs behavior paths.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from scalelab.scenario import HPAScaler, ScalingRules

__all__ = [
    "CPU_METRIC_NAME",
    "Policy",
    "Rules",
    "ControllerConfig",
    "PodStatus",
    "PodMetric",
    "MetricError",
    "Proposal",
    "Classification",
    "Decision",
    "HPAController",
    "within_tolerance",
    "classify_pods",
    "cpu_proposal",
    "scale_up_limit",
    "scale_down_limit",
    "legacy_scale_up_limit",
]

CPU_METRIC_NAME = "cpu resource utilization (percentage of request)"
TOLERANCE_TESTS = ("isWithin", "abs")


# ---------------------------------------------------------------------------------------------
# Configuration (§1, §8)


@dataclass(frozen=True)
class Policy:
    type: str  # "Pods" | "Percent"
    value: int
    period_s: int


@dataclass(frozen=True)
class Rules:
    """One direction of ``spec.behavior`` with the §8 defaults filled in."""

    window_s: float
    policies: tuple[Policy, ...]
    select: str = "Max"  # Max | Min | Disabled
    tolerance: float | None = None

    @property
    def longest_period_s(self) -> int:
        return max(p.period_s for p in self.policies)


DEFAULT_UP_POLICIES = (Policy("Pods", 4, 15), Policy("Percent", 100, 15))
DEFAULT_DOWN_POLICIES = (Policy("Percent", 100, 15),)


def _rules(given: ScalingRules | None, *, default_window: float, default_policies: tuple[Policy, ...]) -> Rules:
    if given is None:
        return Rules(default_window, default_policies)
    policies = default_policies
    if given.policies is not None:  # a given list replaces the defaults wholesale
        policies = tuple(Policy(p.type, p.value, p.period_s) for p in given.policies)
    window = default_window if given.stabilization_window_s is None else float(given.stabilization_window_s)
    return Rules(window, policies, given.select_policy, given.tolerance)


@dataclass(frozen=True)
class ControllerConfig:
    """The HPA spec plus the kube-controller-manager flags that shape its decisions.

    ``scale_up``/``scale_down`` are None together: ``spec.behavior`` is nil (the legacy path,
    §11). ``tolerance_test`` is ``isWithin`` (1.33+, inclusive) or ``abs`` (older releases).
    ``configurable_tolerance`` is the ``HPAConfigurableTolerance`` gate (off in 1.34, on from
    1.35): off, per-HPA tolerances are dropped and the flag is used for both directions.
    """

    min_replicas: int = 1
    max_replicas: int = 10
    target_pct: int = 50
    tolerance: float = 0.1
    downscale_stabilization_s: float = 300.0
    cpu_initialization_period_s: float = 300.0
    initial_readiness_delay_s: float = 30.0
    scale_up: Rules | None = None
    scale_down: Rules | None = None
    tolerance_test: str = "isWithin"
    configurable_tolerance: bool = False

    def __post_init__(self) -> None:
        if (self.scale_up is None) != (self.scale_down is None):
            raise ValueError("scale_up and scale_down are both set (behavior) or both None (legacy)")
        if self.tolerance_test not in TOLERANCE_TESTS:
            raise ValueError(f"tolerance_test must be one of {TOLERANCE_TESTS}")

    @property
    def legacy(self) -> bool:
        return self.scale_up is None

    @property
    def tolerances(self) -> tuple[float, float]:
        """(down, up) tolerance after the per-HPA fields and the feature gate."""
        down = up = self.tolerance
        if self.configurable_tolerance and self.scale_up is not None and self.scale_down is not None:
            if self.scale_down.tolerance is not None:
                down = self.scale_down.tolerance
            if self.scale_up.tolerance is not None:
                up = self.scale_up.tolerance
        return down, up

    @classmethod
    def from_scaler(cls, scaler: HPAScaler, **overrides: object) -> ControllerConfig:
        up = down = None
        if scaler.behavior is not None:  # defaulting happens only for a non-nil behavior (§8)
            up = _rules(scaler.behavior.scale_up, default_window=0.0, default_policies=DEFAULT_UP_POLICIES)
            down = _rules(
                scaler.behavior.scale_down,
                default_window=scaler.downscale_stabilization_s,
                default_policies=DEFAULT_DOWN_POLICIES,
            )
        values: dict[str, object] = dict(
            min_replicas=scaler.min_replicas,
            max_replicas=scaler.max_replicas,
            target_pct=scaler.target_cpu_pct,
            tolerance=scaler.tolerance,
            downscale_stabilization_s=scaler.downscale_stabilization_s,
            cpu_initialization_period_s=scaler.cpu_initialization_period_s,
            initial_readiness_delay_s=scaler.initial_readiness_delay_s,
            scale_up=up,
            scale_down=down,
        )
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]


def within_tolerance(ratio: float, tol_down: float, tol_up: float, test: str = "isWithin") -> bool:
    """§3: 1.33+ ``(1 - down) <= ratio <= (1 + up)``; older ``abs(1 - ratio) <= tolerance``."""
    if test == "abs":
        return abs(1.0 - ratio) <= tol_up if ratio > 1.0 else abs(1.0 - ratio) <= tol_down
    return (1.0 - tol_down) <= ratio <= (1.0 + tol_up)


# ---------------------------------------------------------------------------------------------
# Pods and metrics as the controller sees them (§2, §4)


@dataclass(frozen=True)
class PodStatus:
    """One pod of the target's selector. ``ready`` None means no Ready condition yet."""

    name: str
    phase: str = "Running"  # Pending | Running | Succeeded | Failed
    deleting: bool = False
    start_time: float | None = 0.0
    ready: bool | None = True
    ready_changed_s: float | None = 0.0  # the Ready condition's lastTransitionTime
    request_m: int | None = 500  # Σ CPU requests of the pod's containers, milli; None: one lacks it


@dataclass(frozen=True)
class PodMetric:
    """A metrics.k8s.io PodMetrics entry: CPU in milli-cores (rounded up), timestamp and window."""

    usage_m: int
    timestamp: float
    window_s: float


class MetricError(Exception):
    """A metric could not be computed; ``reason`` is the ScalingActive=False reason."""

    def __init__(self, message: str, reason: str = "FailedGetResourceMetric") -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Classification:
    ready: tuple[str, ...]
    unready: tuple[str, ...]
    missing: tuple[str, ...]
    ignored: tuple[str, ...]


def classify_pods(pods: Sequence[PodStatus], metrics: Mapping[str, PodMetric], now: float, cfg: ControllerConfig) -> Classification:
    """§4, in order: ignored, Pending → unready, no metric → missing, the CPU readiness rules."""
    ready: list[str] = []
    unready: list[str] = []
    missing: list[str] = []
    ignored: list[str] = []
    for pod in pods:
        if pod.deleting or pod.phase == "Failed":
            ignored.append(pod.name)
            continue
        if pod.phase == "Pending":
            unready.append(pod.name)
            continue
        metric = metrics.get(pod.name)
        if metric is None:
            missing.append(pod.name)
            continue
        if _cpu_unready(pod, metric, now, cfg):
            unready.append(pod.name)
            continue
        ready.append(pod.name)
    return Classification(tuple(ready), tuple(unready), tuple(missing), tuple(ignored))


def _cpu_unready(pod: PodStatus, metric: PodMetric, now: float, cfg: ControllerConfig) -> bool:
    if pod.ready is None or pod.start_time is None or pod.ready_changed_s is None:
        return True
    if now < pod.start_time + cfg.cpu_initialization_period_s:
        # the sample window must lie entirely after the pod became Ready (Go Before = strict)
        return (not pod.ready) or metric.timestamp < pod.ready_changed_s + metric.window_s
    # "never been ready": Ready is False and the condition last changed within the initial delay
    return (not pod.ready) and pod.start_time + cfg.initial_readiness_delay_s > pod.ready_changed_s


# ---------------------------------------------------------------------------------------------
# One metric's proposal (§2, §5)


@dataclass(frozen=True)
class Proposal:
    """A metric's replica proposal and the status it reports (computed before §5 adjustments)."""

    replicas: int
    utilization_pct: int
    average_m: int
    ready_count: int
    classification: Classification
    metric_name: str = CPU_METRIC_NAME


def _utilization(usage: Mapping[str, int], requests: Mapping[str, int], target_pct: int) -> tuple[int, float]:
    sum_usage = 0
    sum_request = 0
    for name, value in usage.items():
        if name in requests:
            sum_usage += value
            sum_request += requests[name]
    if sum_request == 0:
        raise MetricError("no metrics returned matched known pods")
    util = (100 * sum_usage) // sum_request  # int64 division, truncates
    return util, util / target_pct  # float64 of two integers


def cpu_proposal(
    pods: Sequence[PodStatus], metrics: Mapping[str, PodMetric], current: int, now: float, cfg: ControllerConfig
) -> Proposal:
    """§2 + §5: the replica count a CPU ``Utilization`` target proposes. Raises MetricError."""
    if not pods:
        raise MetricError("no pods returned by selector while calculating replica count")
    requests: dict[str, int] = {}
    for pod in pods:
        if pod.request_m is None:
            raise MetricError(f"missing request for cpu in container ai-agent of Pod {pod.name}")
        requests[pod.name] = pod.request_m
    groups = classify_pods(pods, metrics, now, cfg)
    usage = {name: metrics[name].usage_m for name in groups.ready}
    if not usage:
        raise MetricError("did not receive metrics for targeted pods (pods might be unready)")
    util, ratio = _utilization(usage, requests, cfg.target_pct)
    average_m = sum(usage.values()) // len(usage)
    tol_down, tol_up = cfg.tolerances

    def result(n: int) -> Proposal:
        return Proposal(n, util, average_m, len(groups.ready), groups)

    def within(r: float) -> bool:
        return within_tolerance(r, tol_down, tol_up, cfg.tolerance_test)

    scale_up_with_unready = len(groups.unready) > 0 and ratio > 1.0
    if not groups.missing and not scale_up_with_unready:
        return result(current if within(ratio) else math.ceil(ratio * len(groups.ready)))

    if ratio < 1.0:
        fallback = max(100, cfg.target_pct)
        for name in groups.missing:
            usage[name] = requests[name] * fallback // 100
    elif ratio > 1.0:
        for name in groups.missing:
            usage[name] = 0
    if scale_up_with_unready:
        for name in groups.unready:
            usage[name] = 0
    _, new_ratio = _utilization(usage, requests, cfg.target_pct)
    if within(new_ratio) or (ratio < 1.0 and new_ratio > 1.0) or (ratio > 1.0 and new_ratio < 1.0):
        return result(current)
    new = math.ceil(new_ratio * len(usage))
    if (new_ratio < 1.0 and new > current) or (new_ratio > 1.0 and new < current):
        return result(current)
    return result(new)


# ---------------------------------------------------------------------------------------------
# Rate limits (§10, §11)


def _changes_after(events: Sequence[tuple[int, float]], cutoff: float) -> int:
    return sum(n for n, t in events if t > cutoff)


def scale_up_limit(current: int, rules: Rules, up_events: Sequence[tuple[int, float]], down_events: Sequence[tuple[int, float]], now: float) -> int:
    """§10: the highest count the up-policies allow now (before the guard and maxReplicas)."""
    if rules.select == "Disabled":
        return current
    pick = max if rules.select == "Max" else min
    limits = []
    for policy in rules.policies:
        cutoff = now - policy.period_s
        start = current - _changes_after(up_events, cutoff) + _changes_after(down_events, cutoff)
        if policy.type == "Pods":
            limits.append(start + policy.value)
        else:
            limits.append(math.ceil(float(start) * (1.0 + float(policy.value) / 100.0)))
    return pick(limits)


def scale_down_limit(current: int, rules: Rules, up_events: Sequence[tuple[int, float]], down_events: Sequence[tuple[int, float]], now: float) -> int:
    """§10: the lowest count the down-policies allow now (before the guard and minReplicas)."""
    if rules.select == "Disabled":
        return current
    pick = min if rules.select == "Max" else max  # Max = the largest change
    limits = []
    for policy in rules.policies:
        cutoff = now - policy.period_s
        start = current + _changes_after(down_events, cutoff) - _changes_after(up_events, cutoff)
        if policy.type == "Pods":
            limits.append(start - policy.value)
        else:
            limits.append(int(float(start) * (1.0 - float(policy.value) / 100.0)))  # truncation
    return pick(limits)


def legacy_scale_up_limit(current: int) -> int:
    """§11: ``max(2 × current, 4)`` (scaleUpLimitFactor 2.0, scaleUpLimitMinimum 4.0)."""
    return int(max(2.0 * float(current), 4.0))


# ---------------------------------------------------------------------------------------------
# The controller (§6, §7, §9, §11, §12, §13)


@dataclass
class Decision:
    """The outcome of one sync: desired replicas, conditions, and the event if it rescaled."""

    time_s: float
    current: int
    desired: int
    proposal: int | None = None
    stabilized: int | None = None
    utilization_pct: int | None = None
    conditions: dict[str, tuple[bool, str]] = field(default_factory=dict)
    reason: str = ""  # SuccessfulRescale reason text
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (reason, message)

    @property
    def rescaled(self) -> bool:
        return self.desired != self.current

    @property
    def event_message(self) -> str:
        return f"New size: {self.desired}; reason: {self.reason}" if self.rescaled else ""


MetricOutcome = Proposal | MetricError


class HPAController:
    """One HPA's in-memory controller state: recommendations and scale events (§6)."""

    def __init__(self, cfg: ControllerConfig) -> None:
        self.cfg = cfg
        self.recommendations: list[tuple[int, float]] | None = None
        self.up_events: list[tuple[int, float]] = []
        self.down_events: list[tuple[int, float]] = []

    def reconcile_cpu(self, now: float, current: int, pods: Sequence[PodStatus], metrics: Mapping[str, PodMetric]) -> Decision:
        """A sync of an HPA with one CPU ``Utilization`` metric."""
        try:
            outcome: MetricOutcome = cpu_proposal(pods, metrics, current, now, self.cfg)
        except MetricError as exc:
            outcome = exc
        return self.reconcile(now, current, [outcome])

    def reconcile(self, now: float, current: int, outcomes: Sequence[MetricOutcome]) -> Decision:
        """§7: one sync given each metric's outcome (a Proposal or a MetricError)."""
        cfg = self.cfg
        if self.recommendations is None:  # first reconcile of the key records (spec, now)
            self.recommendations = [(current, now)]
        d = Decision(time_s=now, current=current, desired=current)
        d.conditions["AbleToScale"] = (True, "SucceededGetScale")
        if current == 0 and cfg.min_replicas != 0:
            d.conditions["ScalingActive"] = (False, "ScalingDisabled")
            return d
        if current > cfg.max_replicas:
            d.desired, d.reason = cfg.max_replicas, "Current number of replicas above Spec.MaxReplicas"
        elif current < cfg.min_replicas:
            d.desired, d.reason = cfg.min_replicas, "Current number of replicas below Spec.MinReplicas"
        else:
            valid = [o for o in outcomes if isinstance(o, Proposal)]
            failed = [o for o in outcomes if isinstance(o, MetricError)]
            for err in failed:
                d.warnings.append((err.reason, f"unable to get metrics for resource cpu: {err}"))
            if valid:
                d.utilization_pct = valid[0].utilization_pct
            if not valid or (failed and max(p.replicas for p in valid) < current):
                reason = failed[0].reason if failed else "FailedGetResourceMetric"
                d.conditions["ScalingActive"] = (False, reason)
                d.warnings.append(("FailedComputeMetricsReplicas", "invalid metrics, see the metric warnings"))
                return d  # a failed sync records no recommendation
            d.conditions["ScalingActive"] = (True, "ValidMetricFound")
            best = max(valid, key=lambda p: p.replicas)
            d.proposal = best.replicas
            if cfg.legacy:
                d.desired = self._legacy(d, now, current, best.replicas)
            else:
                d.desired = self._with_behavior(d, now, current, best.replicas)
            if d.desired > current:
                d.reason = f"{best.metric_name} above target"
            elif d.desired < current:
                d.reason = "All metrics below target"
        if d.rescaled:
            d.conditions["AbleToScale"] = (True, "SucceededRescale")
            if not cfg.legacy:
                self._store_event(now, current, d.desired)
        return d

    # -- legacy path (§11) ---------------------------------------------------------------------
    def _legacy(self, d: Decision, now: float, current: int, proposal: int) -> int:
        cfg = self.cfg
        recs = self.recommendations or []
        cutoff = now - cfg.downscale_stabilization_s
        stabilized = proposal
        reuse = None
        for i, (value, t) in enumerate(recs):
            if t >= cutoff:  # "not older than": an entry exactly at the cutoff still counts
                stabilized = max(stabilized, value)
            elif reuse is None:
                reuse = i
        self._record(recs, reuse, proposal, now)
        d.stabilized = stabilized
        d.conditions["AbleToScale"] = (True, "ScaleDownStabilized" if stabilized != proposal else "ReadyForNewScale")
        limit = legacy_scale_up_limit(current)
        if cfg.max_replicas > limit:
            ceiling, why = limit, "ScaleUpLimit"
        else:
            ceiling, why = cfg.max_replicas, "TooManyReplicas"
        if stabilized < cfg.min_replicas:
            d.conditions["ScalingLimited"] = (True, "TooFewReplicas")
            return cfg.min_replicas
        if stabilized > ceiling:
            d.conditions["ScalingLimited"] = (True, why)
            return ceiling
        d.conditions["ScalingLimited"] = (False, "DesiredWithinRange")
        return stabilized

    # -- behavior path (§9, §10) ---------------------------------------------------------------
    def _with_behavior(self, d: Decision, now: float, current: int, proposal: int) -> int:
        stabilized = self._stabilize(d, now, current, proposal)
        d.stabilized = stabilized
        final, reason = self._rate_limit(now, current, stabilized)
        d.conditions["ScalingLimited"] = (final != stabilized, reason)
        return final

    def _stabilize(self, d: Decision, now: float, current: int, proposal: int) -> int:
        up, down = self.cfg.scale_up, self.cfg.scale_down
        assert up is not None and down is not None
        recs = self.recommendations or []
        up_cutoff, down_cutoff = now - up.window_s, now - down.window_s
        old_cutoff = now - max(up.window_s, down.window_s)
        up_floor = down_ceil = proposal
        reuse = None
        for i, (value, t) in enumerate(recs):
            if t > up_cutoff:  # Go After: strictly after
                up_floor = min(up_floor, value)
            if t > down_cutoff:
                down_ceil = max(down_ceil, value)
            if t < old_cutoff and reuse is None:
                reuse = i
        stabilized = current
        if stabilized < up_floor:
            stabilized = up_floor
        if stabilized > down_ceil:
            stabilized = down_ceil
        self._record(recs, reuse, proposal, now)
        if stabilized < proposal:
            d.conditions["AbleToScale"] = (True, "ScaleUpStabilized")
        elif stabilized > proposal:
            d.conditions["AbleToScale"] = (True, "ScaleDownStabilized")
        else:
            d.conditions["AbleToScale"] = (True, "ReadyForNewScale")
        return stabilized

    def _rate_limit(self, now: float, current: int, desired: int) -> tuple[int, str]:
        cfg = self.cfg
        assert cfg.scale_up is not None and cfg.scale_down is not None
        if desired > current:
            limit = scale_up_limit(current, cfg.scale_up, self.up_events, self.down_events, now)
            limit = max(limit, current)
            ceiling = min(cfg.max_replicas, limit)
            if desired > ceiling:
                return ceiling, "ScaleUpLimit" if limit < cfg.max_replicas else "TooManyReplicas"
        elif desired < current:
            limit = scale_down_limit(current, cfg.scale_down, self.up_events, self.down_events, now)
            limit = min(limit, current)
            floor = max(cfg.min_replicas, limit)
            if desired < floor:
                return floor, "ScaleDownLimit" if limit > cfg.min_replicas else "TooFewReplicas"
        return desired, "DesiredWithinRange"

    def _store_event(self, now: float, previous: int, new: int) -> None:
        assert self.cfg.scale_up is not None and self.cfg.scale_down is not None
        if new > previous:
            keep_after = now - self.cfg.scale_up.longest_period_s
            self.up_events = [e for e in self.up_events if not e[1] < keep_after] + [(new - previous, now)]
        else:
            keep_after = now - self.cfg.scale_down.longest_period_s
            self.down_events = [e for e in self.down_events if not e[1] < keep_after] + [(previous - new, now)]

    @staticmethod
    def _record(recs: list[tuple[int, float]], reuse: int | None, value: int, now: float) -> None:
        if reuse is not None:
            recs[reuse] = (value, now)
        else:
            recs.append((value, now))
