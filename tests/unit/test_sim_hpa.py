"""The HPA controller model against every worked example and table of hpa-controller.md."""

from __future__ import annotations

import math

import pytest

from scalelab.scenario import Behavior, HPAScaler, ScalingPolicy, ScalingRules
from scalelab.sim.hpa import (
    ControllerConfig,
    HPAController,
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

NOW = 1000.0  # pods started long ago: past the CPU initialization period


def ready_pods(usages_m: list[int], request_m: int = 200) -> tuple[list[PodStatus], dict[str, PodMetric]]:
    pods = [PodStatus(f"p{i}", request_m=request_m) for i in range(len(usages_m))]
    metrics = {p.name: PodMetric(u, NOW - 1, 15.0) for p, u in zip(pods, usages_m)}
    return pods, metrics


def cfg(**kw: object) -> ControllerConfig:
    return ControllerConfig(**{"min_replicas": 1, "max_replicas": 100, "target_pct": 50, **kw})  # type: ignore[arg-type]


def proposal(n: int) -> Proposal:
    pods, metrics = ready_pods([100])
    return Proposal(n, 50, 100, 1, classify_pods(pods, metrics, NOW, cfg()))


def behavior_cfg(up: Rules | None = None, down: Rules | None = None, **kw: object) -> ControllerConfig:
    return cfg(
        scale_up=up or Rules(0.0, (Policy("Pods", 4, 15), Policy("Percent", 100, 15))),
        scale_down=down or Rules(300.0, (Policy("Percent", 100, 15),)),
        **kw,
    )


# -- §2 integer percent, §3 tolerance ------------------------------------------------------------


def test_54_9_percent_truncates_to_54_inside_tolerance() -> None:
    pods, metrics = ready_pods([549, 549, 549], request_m=1000)
    p = cpu_proposal(pods, metrics, current=3, now=NOW, cfg=cfg())
    assert p.utilization_pct == 54
    assert p.replicas == 3


@pytest.mark.parametrize(
    ("test", "expected"),
    [("isWithin", 4), ("abs", math.ceil(1.1 * 4))],  # 1.33+: 1.1 <= 1.0 + 0.1 keeps; older: abs() > 0.1 scales
)
def test_tolerance_edge_1_1_both_versions(test: str, expected: int) -> None:
    pods, metrics = ready_pods([110, 110, 110, 110])  # 55% of 200m against 50%
    p = cpu_proposal(pods, metrics, current=4, now=NOW, cfg=cfg(tolerance_test=test))
    assert p.utilization_pct == 55
    assert p.replicas == expected


def test_tolerance_functions_at_the_edges() -> None:
    assert abs(1 - 55 / 50) == pytest.approx(0.1) and abs(1 - 55 / 50) > 0.1
    assert within_tolerance(55 / 50, 0.1, 0.1, "isWithin")
    assert not within_tolerance(55 / 50, 0.1, 0.1, "abs")
    assert within_tolerance(0.9, 0.1, 0.1, "isWithin")  # inclusive lower end
    assert not within_tolerance(0.89, 0.1, 0.1, "isWithin")
    assert within_tolerance(1.2, 0.1, 0.25) and not within_tolerance(0.85, 0.1, 0.25)


def test_per_hpa_tolerance_needs_the_feature_gate() -> None:
    up = Rules(0.0, (Policy("Percent", 100, 15),), tolerance=0.5)
    down = Rules(300.0, (Policy("Percent", 100, 15),), tolerance=0.0)
    assert behavior_cfg(up, down).tolerances == (0.1, 0.1)  # 1.34: gate off, flag both ways
    assert behavior_cfg(up, down, configurable_tolerance=True).tolerances == (0.0, 0.5)


# -- §5 worked examples (request 200m, target 50%) -----------------------------------------------


def test_unready_during_scale_up_keeps_spec() -> None:
    pods, metrics = ready_pods([150] * 4)
    pods += [PodStatus(f"u{i}", ready=False, ready_changed_s=NOW - 5, start_time=NOW - 20, request_m=200) for i in range(4)]
    for i in range(4):
        metrics[f"u{i}"] = PodMetric(10, NOW - 1, 15.0)
    p = cpu_proposal(pods, metrics, current=8, now=NOW, cfg=cfg())
    assert len(p.classification.unready) == 4
    assert p.utilization_pct == 75  # status reports the value before the adjustment
    assert p.replicas == 8  # 600m/1600m -> 37% -> 0.74: direction flipped


def test_missing_during_scale_down_keeps_spec() -> None:
    pods, metrics = ready_pods([50] * 4)
    pods += [PodStatus("m0", request_m=200), PodStatus("m1", request_m=200)]
    p = cpu_proposal(pods, metrics, current=6, now=NOW, cfg=cfg())
    assert p.classification.missing == ("m0", "m1")
    assert p.replicas == 6  # (200 + 400)/1200 -> 50% -> 1.0, not ceil(0.5 x 4) = 2


def test_no_adjustment_plain_formula() -> None:
    pods, metrics = ready_pods([250, 150, 220])
    p = cpu_proposal(pods, metrics, current=3, now=NOW, cfg=cfg())
    assert p.utilization_pct == 103
    assert p.replicas == 7  # ceil(2.06 x 3) = ceil(6.18)


def test_missing_pods_fill_at_max_100_target() -> None:
    # target 150%: ready pods at 50% (ratio 0.33); missing pods count at 150% of their request.
    pods, metrics = ready_pods([100, 100])
    pods += [PodStatus("m0", request_m=200)]
    p = cpu_proposal(pods, metrics, current=3, now=NOW, cfg=cfg(target_pct=150))
    # (100 + 100 + 300) / 600 -> 83% -> 0.5533 -> ceil(1.66) = 2
    assert p.replicas == 2


def test_missing_pods_count_zero_when_scaling_up() -> None:
    pods, metrics = ready_pods([200, 200])  # 100% -> ratio 2
    pods += [PodStatus("m0", request_m=200), PodStatus("m1", request_m=200)]
    p = cpu_proposal(pods, metrics, current=4, now=NOW, cfg=cfg())
    assert p.replicas == 4  # 400/800 -> 50% -> 1.0, inside tolerance: keep


# -- §4 pod classification -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pod", "metric", "expected"),
    [
        (PodStatus("x", deleting=True), PodMetric(100, NOW, 15), "ignored"),
        (PodStatus("x", phase="Failed"), PodMetric(100, NOW, 15), "ignored"),
        (PodStatus("x", phase="Pending", ready=None, start_time=None), None, "unready"),
        (PodStatus("x"), None, "missing"),
        (PodStatus("x", ready=None), PodMetric(100, NOW, 15), "unready"),
        # inside the CPU initialization period: the window must lie after the Ready transition
        (PodStatus("x", start_time=NOW - 60, ready_changed_s=NOW - 20), PodMetric(100, NOW - 6, 15), "unready"),
        (PodStatus("x", start_time=NOW - 60, ready_changed_s=NOW - 20), PodMetric(100, NOW - 5, 15), "ready"),
        (PodStatus("x", start_time=NOW - 60, ready=False, ready_changed_s=NOW - 60), PodMetric(100, NOW, 15), "unready"),
        # after it: unready only if never been ready (Ready False, changed within the initial delay)
        (PodStatus("x", start_time=0.0, ready=False, ready_changed_s=10.0), PodMetric(100, NOW, 15), "unready"),
        (PodStatus("x", start_time=0.0, ready=False, ready_changed_s=500.0), PodMetric(100, NOW, 15), "ready"),
    ],
)
def test_classification(pod: PodStatus, metric: PodMetric | None, expected: str) -> None:
    c = classify_pods([pod], {} if metric is None else {"x": metric}, NOW, cfg())
    groups = {"ready": c.ready, "unready": c.unready, "missing": c.missing, "ignored": c.ignored}
    assert groups[expected] == ("x",)


# -- §10 rate limits -----------------------------------------------------------------------------


def test_percent_10_per_60s_from_80() -> None:
    down = Rules(0.0, (Policy("Percent", 10, 60),))
    hpa = HPAController(behavior_cfg(down=down))
    d = hpa.reconcile(0.0, 80, [proposal(10)])
    assert d.desired == 72 and d.conditions["ScalingLimited"] == (True, "ScaleDownLimit")
    d = hpa.reconcile(15.0, 72, [proposal(10)])
    assert d.desired == 72  # periodStart = 72 + 8 = 80 -> limit stays 72
    d = hpa.reconcile(59.9, 72, [proposal(10)])
    assert d.desired == 72
    d = hpa.reconcile(60.0, 72, [proposal(10)])  # the event at 0 is not strictly after 60 - 60
    assert d.desired == 64
    assert d.event_message == "New size: 64; reason: All metrics below target"


@pytest.mark.parametrize(("current", "legacy", "behavior"), [(1, 4, 5), (2, 4, 6), (3, 6, 7), (4, 8, 8), (7, 14, 14)])
def test_legacy_vs_default_behavior_scale_up_limit(current: int, legacy: int, behavior: int) -> None:
    up = behavior_cfg().scale_up
    assert up is not None
    assert legacy_scale_up_limit(current) == legacy
    assert scale_up_limit(current, up, [], [], NOW) == behavior
    # and through the controller, with a proposal far above
    assert HPAController(cfg()).reconcile(NOW, current, [proposal(100)]).desired == legacy
    d = HPAController(behavior_cfg()).reconcile(NOW, current, [proposal(100)])
    assert d.desired == behavior and d.conditions["ScalingLimited"] == (True, "ScaleUpLimit")


def test_select_policy_min_and_disabled() -> None:
    up_min = Rules(0.0, (Policy("Pods", 4, 15), Policy("Percent", 100, 15)), select="Min")
    assert scale_up_limit(10, up_min, [], [], NOW) == 14
    down_max = Rules(0.0, (Policy("Pods", 1, 15), Policy("Percent", 50, 15)))
    assert scale_down_limit(10, down_max, [], [], NOW) == 5  # Max = the largest change
    down_min = Rules(0.0, down_max.policies, select="Min")
    assert scale_down_limit(10, down_min, [], [], NOW) == 9
    disabled = Rules(0.0, down_max.policies, select="Disabled")
    hpa = HPAController(behavior_cfg(down=disabled))
    assert hpa.reconcile(NOW, 10, [proposal(2)]).desired == 10


def test_period_start_counts_up_and_down_events_strictly_after_cutoff() -> None:
    up = Rules(0.0, (Policy("Pods", 4, 60),))
    assert scale_up_limit(10, up, [(4, 40.0)], [], 99.999) == 10  # 10 - 4 + 4
    assert scale_up_limit(10, up, [(4, 40.0)], [], 100.0) == 14  # at the cutoff: no longer counted
    assert scale_up_limit(10, up, [(4, 50.0)], [(2, 70.0)], 100.0) == 12  # 10 - 4 + 2 + 4


def test_default_up_policies_double_per_sync() -> None:
    hpa = HPAController(behavior_cfg())
    current, t, sizes = 1, 0.0, []
    for _ in range(5):
        d = hpa.reconcile(t, current, [proposal(100)])
        current = d.desired
        sizes.append(current)
        t += 15.0 + 0.05  # the previous event falls just outside the 15 s period
    assert sizes == [5, 10, 20, 40, 80]


# -- §9/§11 stabilization -----------------------------------------------------------------------


@pytest.mark.parametrize(("now", "behavior", "legacy"), [(299.9, 10, 10), (300.0, 5, 10), (300.1, 5, 5)])
def test_stabilization_cutoff_behavior_strict_legacy_inclusive(now: float, behavior: int, legacy: int) -> None:
    for config, expected in ((behavior_cfg(), behavior), (cfg(), legacy)):
        hpa = HPAController(config)
        assert hpa.reconcile(0.0, 10, [proposal(10)]).desired == 10
        assert hpa.reconcile(now, 10, [proposal(5)]).desired == expected


def test_first_reconcile_records_spec_and_blocks_scale_down() -> None:
    hpa = HPAController(behavior_cfg())
    d = hpa.reconcile(15.0, 10, [proposal(2)])
    assert d.desired == 10 and d.conditions["AbleToScale"] == (True, "ScaleDownStabilized")
    assert hpa.reconcile(316.0, 10, [proposal(2)]).desired == 2


def test_legacy_goes_to_the_higher_recent_recommendation() -> None:
    hpa = HPAController(cfg())
    hpa.reconcile(0.0, 4, [proposal(8)])  # 4 -> 8
    d = hpa.reconcile(15.0, 8, [proposal(5)])
    assert d.desired == 8
    d = hpa.reconcile(30.0, 8, [proposal(9)])
    assert d.desired == 9
    hpa2 = HPAController(cfg())
    hpa2.reconcile(0.0, 2, [proposal(2)])
    hpa2.reconcile(1.0, 2, [proposal(6)])  # legacy limit 4: desired 4, recommendation 6 recorded
    d = hpa2.reconcile(16.0, 4, [proposal(5)])
    assert d.desired == 6  # legacy: max over the window (6); behavior would go to the proposal 5
    hpa3 = HPAController(behavior_cfg())
    hpa3.reconcile(0.0, 2, [proposal(2)])
    hpa3.reconcile(1.0, 2, [proposal(6)])
    assert hpa3.reconcile(16.0, 6, [proposal(5)]).desired == 6  # down window keeps 6 there too
    hpa4 = HPAController(behavior_cfg())
    hpa4.reconcile(0.0, 4, [proposal(4)])
    hpa4.reconcile(1.0, 4, [proposal(6)])
    assert hpa4.reconcile(16.0, 4, [proposal(5)]).desired == 5


def test_up_window_holds_scale_up_to_the_lowest_recent_recommendation() -> None:
    up = Rules(60.0, (Policy("Percent", 100, 15),))
    hpa = HPAController(behavior_cfg(up=up))
    hpa.reconcile(0.0, 4, [proposal(4)])
    d = hpa.reconcile(15.0, 4, [proposal(8)])
    assert d.desired == 4 and d.conditions["AbleToScale"] == (True, "ScaleUpStabilized")
    assert hpa.reconcile(59.9, 4, [proposal(8)]).desired == 4  # the 4 recorded at 0 is still in the window
    assert hpa.reconcile(60.0, 4, [proposal(8)]).desired == 8  # at the cutoff it is not "after": out


# -- §7/§12 clamping and multiple metrics --------------------------------------------------------


@pytest.mark.parametrize("config", [cfg(min_replicas=2, max_replicas=5), behavior_cfg(min_replicas=2, max_replicas=5)])
def test_clamping_before_and_after_metrics(config: ControllerConfig) -> None:
    d = HPAController(config).reconcile(NOW, 7, [proposal(1)])
    assert d.desired == 5 and d.event_message == "New size: 5; reason: Current number of replicas above Spec.MaxReplicas"
    d = HPAController(config).reconcile(NOW, 1, [proposal(9)])
    assert d.desired == 2 and d.reason == "Current number of replicas below Spec.MinReplicas"
    d = HPAController(config).reconcile(NOW, 4, [proposal(9)])
    assert d.desired == 5 and d.conditions["ScalingLimited"] == (True, "TooManyReplicas")
    hpa = HPAController(config)
    d = hpa.reconcile(NOW, 3, [proposal(1)])
    assert d.desired == 3  # first reconcile recorded (3, now): stabilized
    d = hpa.reconcile(NOW + 400, 3, [proposal(1)])
    assert d.desired == 2 and d.conditions["ScalingLimited"] == (True, "TooFewReplicas")


def test_scaling_disabled_at_zero() -> None:
    d = HPAController(cfg()).reconcile(NOW, 0, [proposal(3)])
    assert d.desired == 0 and d.conditions["ScalingActive"] == (False, "ScalingDisabled")


def test_multiple_metrics_max_and_failures() -> None:
    err = MetricError("unable to fetch metrics")
    assert HPAController(cfg()).reconcile(NOW, 5, [proposal(6), proposal(7)]).desired == 7
    assert HPAController(cfg()).reconcile(NOW, 5, [proposal(7), err]).desired == 7
    d = HPAController(cfg()).reconcile(NOW, 5, [proposal(3), err])
    assert d.desired == 5 and d.conditions["ScalingActive"][0] is False
    assert HPAController(cfg()).reconcile(NOW, 5, [err]).desired == 5


def test_missing_request_fails_the_metric_and_records_nothing() -> None:
    pods, metrics = ready_pods([300, 300, 300])
    pods[1] = PodStatus("p1", request_m=None)
    hpa = HPAController(behavior_cfg())
    d = hpa.reconcile_cpu(NOW, 3, pods, metrics)
    assert d.desired == 3
    assert d.conditions["ScalingActive"] == (False, "FailedGetResourceMetric")
    assert any("missing request for cpu" in msg for _, msg in d.warnings)
    assert hpa.recommendations == [(3, NOW)]  # only the first-reconcile record, no proposal


def test_no_ready_metrics_is_an_error() -> None:
    pods = [PodStatus("p0", phase="Pending", ready=None, start_time=None)]
    with pytest.raises(MetricError, match="did not receive metrics"):
        cpu_proposal(pods, {}, 1, NOW, cfg())


def test_successful_rescale_event_text() -> None:
    pods, metrics = ready_pods([250, 150, 220])
    d = HPAController(behavior_cfg()).reconcile_cpu(NOW, 3, pods, metrics)
    assert d.desired == 7
    assert d.event_message == "New size: 7; reason: cpu resource utilization (percentage of request) above target"
    assert d.conditions["AbleToScale"] == (True, "SucceededRescale")
    assert d.conditions["ScalingActive"] == (True, "ValidMetricFound")


# -- §8 defaults from the scenario model ---------------------------------------------------------


def test_behavior_defaults_from_scenario() -> None:
    legacy = ControllerConfig.from_scaler(HPAScaler(type="hpa"))
    assert legacy.legacy
    partial = ControllerConfig.from_scaler(
        HPAScaler(type="hpa", downscale_stabilization_s=120, behavior=Behavior(scale_down=ScalingRules(select_policy="Min")))
    )
    assert partial.scale_up == Rules(0.0, (Policy("Pods", 4, 15), Policy("Percent", 100, 15)))
    assert partial.scale_down == Rules(120.0, (Policy("Percent", 100, 15),), select="Min")
    given = ControllerConfig.from_scaler(
        HPAScaler(type="hpa", behavior=Behavior(scale_up=ScalingRules(policies=(ScalingPolicy(type="Pods", value=2, period_s=5),))))
    )
    assert given.scale_up is not None and given.scale_up.policies == (Policy("Pods", 2, 5),)
