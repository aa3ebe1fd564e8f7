"""The HPA controller's rules as pure functions: configuration and defaults, pod classification,
one metric's proposal, tolerance and rate limits. `scalelab.sim.hpa` runs them in a controller.

Section numbers (§N) refer to ``docs/hpa-controller.md``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from scalelab.scenario import HPAScaler, ScalingRules

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


