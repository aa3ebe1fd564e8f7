"""A faithful model of the HorizontalPodAutoscaler controller (autoscaling/v2, CPU utilisation).

Follows ``docs/hpa-controller.md`` (the 1.33-1.36 controller code, in our words), section numbers
in the comments refer to it. Pure computation: the caller gives the pods as the controller would
list them and the metrics as metrics.k8s.io would serve them; `HPAController.reconcile` returns
the decision with its conditions and event. Times are float seconds on the run's clock.

Things that must be exact and are: integer-percent truncation; ``spec.replicas`` vs the ready
count; strict "after" on every behavior window (inclusive cutoff on the legacy path);
``periodStart`` accounting; Percent scale-down truncation; the legacy vs behavior paths.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from scalelab.sim.hpa_rules import (  # noqa: F401 - re-exported: the public names of the HPA model
    CPU_METRIC_NAME,
    TOLERANCE_TESTS,
    Classification,
    ControllerConfig,
    MetricError,
    PodMetric,
    PodStatus,
    Policy,
    Proposal,
    Rules,
    classify_pods,
    cpu_proposal,
    legacy_scale_up_limit,
    scale_down_limit,
    scale_up_limit,
    within_tolerance,
)

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
        legacy = cfg.legacy
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
            best = valid[0] if len(valid) == 1 else max(valid, key=lambda p: p.replicas)  # one metric: the common case
            d.proposal = best.replicas
            if legacy:
                d.desired = self._legacy(d, now, current, best.replicas)
            else:
                d.desired = self._with_behavior(d, now, current, best.replicas)
            if d.desired > current:
                d.reason = f"{best.metric_name} above target"
            elif d.desired < current:
                d.reason = "All metrics below target"
        if d.rescaled:
            d.conditions["AbleToScale"] = (True, "SucceededRescale")
            if not legacy:
                self._store_event(now, current, d.desired)
        return d

    # -- legacy path (§11) ---------------------------------------------------------------------
    def _legacy(self, d: Decision, now: float, current: int, proposal: int) -> int:
        cfg = self.cfg
        recs = self.recommendations or []
        cutoff = now - cfg.downscale_stabilization_s
        stabilized = proposal
        reuse = None
        for i, (value, t) in enumerate(recs):  # about 20 entries (300 s of 15-s syncs) every sync
            if t >= cutoff:  # "not older than": an entry exactly at the cutoff still counts
                if value > stabilized:  # max(), without the call
                    stabilized = value
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
