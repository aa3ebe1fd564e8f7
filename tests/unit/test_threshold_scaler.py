"""The threshold autoscaler's rules, table-driven; then the same scaler through the runner and the simulator."""

from __future__ import annotations

from typing import Any

import pytest

from scalelab.scalers import ReplicaStat, ScalerView, make_kit_scaler
from scalelab.scalers.threshold import ThresholdAutoscaler, step_target
from scalelab.scenario import Scenario, ThresholdScaler


def _cfg(**kw: Any) -> ThresholdScaler:
    return ThresholdScaler.model_validate({"type": "threshold", **kw})


def _view(t: float, desired: int, cpu: float | None = 50, mem: float | None = 50, fl: float | None = 2, ready: int | None = None) -> ScalerView:
    n = desired if ready is None else ready
    reps = tuple(ReplicaStat(f"r{i}", i < n, cpu, mem, fl) for i in range(desired))
    return ScalerView(t, desired, n, reps)


def _scales(out: list[Any]) -> list[tuple[int | None, str]]:
    return [(d.replicas, d.kind) for d in out]


# (case, config, view figures (cpu, mem, in-flight), desired, expected (replicas, kind) or None)
RULES = [
    ("cpu above 80 scales up", {}, (85, 10, 0), 3, (4, "scale")),
    ("memory above 80 scales up", {}, (10, 85, 0), 3, (4, "scale")),
    ("more than 3 in flight scales up", {}, (10, 10, 3.5), 3, (4, "scale")),
    ("exactly at the thresholds: nothing", {}, (80, 80, 3), 3, None),
    ("between the bands: nothing", {}, (50, 50, 2), 3, None),
    ("all three low scales down", {}, (20, 20, 0.5), 3, (2, "scale")),
    ("down needs all: memory still high", {}, (20, 40, 0.5), 3, None),
    ("down needs all: one in flight", {}, (20, 20, 1.0), 3, None),
    ("up with all: one low metric holds", {"scale_up": {"cpu_pct": 80, "mem_pct": 80, "combine": "all"}}, (90, 50, 9), 3, None),
    ("up with all: both high", {"scale_up": {"cpu_pct": 80, "mem_pct": 80, "combine": "all"}}, (90, 90, 0), 3, (4, "scale")),
    ("down with any: cpu low is enough", {"scale_down": {"cpu_pct": 30, "mem_pct": 30, "combine": "any"}}, (20, 60, 2), 3, (2, "scale")),
    ("unmeasured metrics are left out", {}, (20, None, None), 3, (2, "scale")),
    ("nothing measured never fires", {}, (None, None, None), 3, None),
    ("max bounds the step", {"max_replicas": 4, "step": 3}, (90, 0, 0), 3, (4, "scale")),
    ("at max: held", {"max_replicas": 3}, (90, 0, 0), 3, (None, "scaler_decision")),
    ("min bounds the step", {"min_replicas": 2, "step": 5}, (5, 5, 0), 3, (2, "scale")),
    ("at min: held", {"min_replicas": 3}, (5, 5, 0), 3, (None, "scaler_decision")),
    ("below min: brought up at once", {"min_replicas": 4}, (50, 50, 2), 2, (4, "scale")),
    ("above max: brought down at once", {"max_replicas": 4}, (50, 50, 2), 6, (4, "scale")),
    ("percent step up rounds up", {"step": 50, "step_unit": "percent"}, (90, 0, 0), 3, (5, "scale")),
    ("percent step is at least one", {"step": 10, "step_unit": "percent"}, (10, 10, 0), 3, (2, "scale")),
    ("dry-run records, does not scale", {"dry_run": True}, (90, 0, 0), 3, (4, "scaler_decision")),
]


@pytest.mark.parametrize("case,config,figures,desired,expected", RULES, ids=[r[0] for r in RULES])
def test_rules(case: str, config: dict[str, Any], figures: tuple[Any, ...], desired: int, expected: tuple[Any, str] | None) -> None:
    scaler = make_kit_scaler(_cfg(**config))
    assert isinstance(scaler, ThresholdAutoscaler)
    out = scaler.decide(_view(1.0, desired, *figures))
    assert _scales(out) == ([] if expected is None else [expected]), case
    if expected is not None and expected[0] is not None:
        # the figures that triggered it are in the detail
        assert "cpu" in out[0].detail and "->" in out[0].detail


def test_no_ready_replica_no_decision() -> None:
    scaler = make_kit_scaler(_cfg())
    assert scaler.decide(_view(1.0, 3, 90, 90, 9, ready=0)) == []


def test_step_target_table() -> None:
    assert [step_target(c, s, u, up) for c, s, u, up in [(3, 1, "pods", True), (3, 2, "pods", False), (4, 100, "percent", True), (1, 10, "percent", True), (8, 25, "percent", False)]] == [4, 1, 8, 2, 6]


def _drive(scaler: Any, figures: list[tuple[float, float, float]], start: int = 2) -> list[tuple[float, int | None, str]]:
    """Feed one view per second (the desired count follows the scaler's own scale decisions)."""
    desired, log = start, []
    for figs in figures:
        due = scaler.next_due_s()
        for d in scaler.decide(_view(due, desired, *figs)):
            log.append((d.t_s, d.replicas, d.kind))
            if d.kind == "scale" and d.replicas is not None:
                desired = d.replicas
    return log


HOT, COLD = (95.0, 20.0, 5.0), (5.0, 5.0, 0.0)


@pytest.mark.parametrize(
    "config,expected",
    [
        ({"up_cooldown_s": 0, "down_cooldown_s": 0}, [(1, 3), (2, 4), (3, 5), (4, 6), (5, 5), (6, 4), (7, 3), (8, 2)]),
        ({"up_cooldown_s": 2, "down_cooldown_s": 3}, [(1, 3), (3, 4), (6, 3)]),
        ({"up_cooldown_s": 10, "down_cooldown_s": 0}, [(1, 3), (5, 2), (6, 1)]),
    ],
    ids=["no cooldown: every second", "up 2 s, down 3 s", "long up cooldown, down free"],
)
def test_cooldowns(config: dict[str, Any], expected: list[tuple[int, int]]) -> None:
    scaler = make_kit_scaler(_cfg(**config))
    log = _drive(scaler, [HOT] * 4 + [COLD] * 4)
    assert [(int(t), n) for t, n, kind in log if kind == "scale"] == expected


def test_cooldown_hold_is_recorded_once_per_reason() -> None:
    scaler = make_kit_scaler(_cfg(up_cooldown_s=5))
    log = _drive(scaler, [HOT] * 4)
    assert [(int(t), n, k) for t, n, k in log] == [(1, 3, "scale"), (2, None, "scaler_decision")]


def test_dry_run_keeps_its_cooldown_cadence() -> None:
    scaler = make_kit_scaler(_cfg(dry_run=True, up_cooldown_s=2))
    log = _drive(scaler, [HOT] * 5)
    assert [(int(t), n) for t, n, k in log if n is not None] == [(1, 3), (3, 3), (5, 3)]  # would scale 2 -> 3, never did
    assert all(k == "scaler_decision" for _, _, k in log)


def test_override_pauses_then_resumes() -> None:
    scaler = make_kit_scaler(_cfg(up_cooldown_s=0, override_pause_s=3))
    scaler.override(0.5, 2)
    log = _drive(scaler, [HOT] * 5)
    assert log[0][2] == "scaler_decision"  # the pause is recorded
    assert [(int(t), n) for t, n, k in log if k == "scale"] == [(4, 3), (5, 4)]  # paused until 3.5


def test_pause_and_resume_switch() -> None:
    scaler = make_kit_scaler(_cfg(up_cooldown_s=0))
    scaler.pause(0.0)
    assert [k for _, _, k in _drive(scaler, [HOT] * 3)] == ["scaler_decision"]
    scaler.resume(3.5)
    log = _drive(scaler, [HOT])
    assert [(n, k) for _, n, k in log] == [(None, "scaler_decision"), (3, "scale")]


def test_window_averages_out_one_noisy_second() -> None:
    # One second at 88 % CPU in a quiet baseline: a 1 s window scales up on it, a 5 s window does not.
    readings = [40, 45, 38, 42, 88]
    for window, expected in ((1, [(3, "scale")]), (5, [])):
        s = ThresholdAutoscaler(_cfg(min_replicas=2, window_s=window, up_cooldown_s=0))
        out: list[Any] = []
        for t, cpu in enumerate(readings, start=1):
            out += s.decide(_view(float(t), 2, cpu=cpu, mem=10, fl=0.5))
        assert _scales(out) == expected, window
    # A load that stays high still fires, at most one window late: the price of the smoothing.
    s = ThresholdAutoscaler(_cfg(min_replicas=2, window_s=5, up_cooldown_s=0))
    fired = [t for t, cpu in enumerate([40, 90, 90, 90, 90, 90], start=1) if s.decide(_view(float(t), 2, cpu=cpu, mem=10, fl=0.5))]
    assert fired and fired[0] == 6


def test_interval_sets_the_due_times() -> None:
    scaler = make_kit_scaler(_cfg(interval_s=5))
    assert scaler.next_due_s() == 5.0
    scaler.decide(_view(5.2, 2))
    assert scaler.next_due_s() == 10.0


@pytest.mark.parametrize(
    "scaler,message",
    [
        ({"type": "threshold", "min_replicas": 5, "max_replicas": 2}, "max_replicas (2) must be >= min_replicas (5)"),
        ({"type": "threshold", "scale_up": {"combine": "any"}}, "at least one of cpu_pct"),
        ({"type": "threshold", "step_unit": "nodes"}, "step_unit"),
        ({"type": "threshold", "interval_s": 0}, "interval_s"),
        ({"type": "threshold", "scale_down": {"cpu_pct": 30, "combine": "most"}}, "combine"),
    ],
)
def test_bad_settings_are_named(scaler: dict[str, Any], message: str) -> None:
    with pytest.raises(Exception) as info:
        Scenario.model_validate({"name": "x", "duration_s": 10, "load": {"baseline": 1}, "arms": {"a": {"platform": "compose", "scaler": scaler}}})
    assert message in str(info.value)


# -- the same scaler in the real runner (toy platform, fake clock) --------------------------------
@pytest.fixture()
def toy(monkeypatch: pytest.MonkeyPatch) -> Any:
    import toy_platform

    from scalelab import registry

    monkeypatch.setitem(registry.PLATFORMS, "toy", toy_platform.SPEC)
    toy_platform.ToyKind.made = []
    return toy_platform


def _toy_run(tmp_path: Any, scaler: dict[str, Any], demand: Any, duration_s: int = 30, at: Any = None) -> list[dict[str, str]]:
    """A full recorded run on the toy platform; ``demand(t)`` is the CPU demand (% of one replica), ``at(t, plat)`` a hook."""
    from test_runner import FakeClock, FakeLoad, _rows

    from scalelab.platforms import platform_for
    from scalelab.runner import Runner, RunOptions

    sc = Scenario.model_validate(
        {
            "name": "toy-run",
            "duration_s": duration_s,
            "load": {"profile": "steady", "baseline": 4},
            "workload": {"timeout_s": 2},
            "arms": {"toy-arm": {"platform": "toy", "scaler": scaler, "replicas": 2}},
        }
    ).sized(4.0)
    clock = FakeClock()
    start = clock.now
    plat = platform_for("toy", sc, "toy-arm", run_id="toy-1")
    plat.demand_pct = lambda: demand(clock.now - start)
    if at is not None:
        clock.listeners.append(lambda: at(clock.now - start, plat))

    def start_load(plan: Any, url: str, run_dir: Any, scenario_file: Any) -> FakeLoad:
        return FakeLoad(clock, run_dir, plan.t0_epoch)

    runner = Runner(sc, "toy-arm", plat, RunOptions(runs_dir=tmp_path), run_id="20261204-000000-toy-run-toy-arm-0002", clock=clock, start_load=start_load)
    run_dir = runner.run()
    for thread in runner._scale_threads:
        thread.join()
    return _rows(run_dir / "events.csv")


def test_runner_scales_up_and_down_by_itself(toy: Any, tmp_path: Any) -> None:
    events = _toy_run(
        tmp_path,
        {"type": "threshold", "min_replicas": 1, "max_replicas": 4, "up_cooldown_s": 2, "down_cooldown_s": 5},
        demand=lambda t: 200.0 if t < 10 else 20.0,
    )
    scales = [(float(e["t_s"]), int(e["replicas"])) for e in events if e["kind"] == "scale" and e["source"] == "threshold"]
    assert scales == [(2.0, 3), (11.0, 2), (16.0, 1)]
    up = next(e for e in events if e["kind"] == "scale" and e["source"] == "threshold")
    assert "cpu 100.0 > 80: yes" in up["detail"] and "over 2 ready" in up["detail"]
    holds = [e["detail"] for e in events if e["kind"] == "scaler_decision"]
    assert any("up cooldown" in d for d in holds) and any("held at min_replicas 1" in d for d in holds)


def test_runner_live_scale_pauses_the_scaler(toy: Any, tmp_path: Any) -> None:
    done: list[bool] = []

    def live_scale(t: float, plat: Any) -> None:
        if t >= 3.2 and not done:
            done.append(True)
            plat.desired = 1
            plat.pending_events.append({"kind": "scale", "replicas": 1, "source": "live", "detail": "scalelab scale compose 1"})

    events = _toy_run(
        tmp_path,
        {"type": "threshold", "max_replicas": 6, "up_cooldown_s": 0, "override_pause_s": 5},
        demand=lambda t: 400.0,
        duration_s=12,
        at=live_scale,
    )
    times = [float(e["t_s"]) for e in events if e["kind"] == "scale" and e["source"] == "threshold"]
    assert times[:2] == [2.0, 3.0] and times[2] == 9.0  # paused from the live scale (3.4) until 8.4
    assert any(e["kind"] == "scaler_decision" and "paused: manual scale to 1" in e["detail"] for e in events)


# -- the same scaler in the simulator -------------------------------------------------------------
def _sim_threshold(cooldown_s: float) -> tuple[list[tuple[float, int]], list[int], int]:
    """classroom-spike with one threshold arm (min 2, max 10): its scale actions, desired per second, seconds over objective."""
    import numpy as np

    from scalelab.scenario import load_scenario
    from scalelab.sim import simulate

    data = load_scenario("classroom-spike", sized=False).model_dump(mode="json", exclude={"cpu_budget"})
    scaler = {"type": "threshold", "min_replicas": 2, "max_replicas": 10, "up_cooldown_s": cooldown_s, "down_cooldown_s": cooldown_s}
    data["arms"] = {"compose-threshold": {"platform": "compose", "replicas": 3, "scaler": scaler}}
    sc = Scenario.model_validate(data).sized(4.0)
    result = simulate(sc, "compose-threshold")
    scales = [(e.t_s, int(e.replicas)) for e in result.events if e.kind == "scale" and e.source == "threshold" and e.replicas is not None]
    p95 = np.asarray(result.columns["p95_ms"], dtype=float)
    return scales, [int(x) for x in result.columns["replicas_desired"]], int(np.nansum(p95 > sc.latency_objective_ms))


def test_simulator_no_cooldown_overshoots_and_flaps() -> None:
    scales, desired, over = _sim_threshold(0)
    # new replicas take requests a second after they start (nginx does not wait for readiness) but
    # the queue on the old ones keeps their CPU high, so it adds one a second up to 8 (about 6 would do) ...
    assert max(desired) >= 8 and len([s for s in scales if 30 <= s[0] < 45]) >= 5
    # ... and drops them all again within seconds of the spike's end
    assert [n for t, n in scales if t >= 90][-1] == 2 and len(scales) >= 12


def test_simulator_long_cooldown_reacts_late() -> None:
    fast, _, over_fast = _sim_threshold(0)
    slow, desired, over_slow = _sim_threshold(120)
    # the baseline scale-down at t=1 starts the cooldown: the spike (30-90 s) gets no scale-up at all
    assert slow[0] == (1.0, 2) and not [t for t, _ in slow if 30 <= t < 90]
    assert max(desired[30:90]) == 2 and over_slow > over_fast + 30


def test_runner_autoscale_pause_and_resume(toy: Any, tmp_path: Any) -> None:
    sent: list[str] = []

    def switch(t: float, plat: Any) -> None:
        for at, action in ((2.6, "pause"), (6.6, "resume")):
            if t >= at and action not in sent:
                sent.append(action)
                plat.pending_events.append({"kind": "autoscale", "replicas": None, "source": "live", "detail": action})

    events = _toy_run(tmp_path, {"type": "threshold", "max_replicas": 8, "up_cooldown_s": 0}, demand=lambda t: 400.0, duration_s=10, at=switch)
    times = [float(e["t_s"]) for e in events if e["kind"] == "scale" and e["source"] == "threshold"]
    # up at 2 and 3 (the pause is seen at the 3.4 sample), nothing while paused, again from 7 (resume seen at 7.4 -> 8)
    assert times[:2] == [2.0, 3.0] and not [t for t in times if 4 <= t < 8] and 8.0 in times
    kinds = [(e["kind"], e["detail"]) for e in events if e["kind"] in ("autoscale", "scaler_decision")]
    assert ("autoscale", "pause") in kinds and ("autoscale", "resume") in kinds
    assert ("scaler_decision", "paused: scalelab autoscale pause") in kinds and ("scaler_decision", "resumed: scalelab autoscale resume") in kinds


def test_autoscale_switch_file_reaches_the_running_platform(tmp_path: Any) -> None:
    from scalelab.platforms.compose import ComposePlatform, ComposeSettings
    from scalelab.scalers.switch import SwitchReader, write_switch
    from scalelab.scenario import load_scenario

    settings = ComposeSettings.for_scenario(load_scenario("ci-spike", cpu_budget=1.0), "unit-switch", port=18080)
    write_switch(tmp_path / settings.project, "pause")  # before the run started: not for this run
    running = ComposePlatform(settings, state_root_dir=tmp_path)
    ComposePlatform(settings, state_root_dir=tmp_path).autoscale("resume")  # another process: `scalelab autoscale resume`
    assert running._switch.events() == [{"kind": "autoscale", "replicas": None, "source": "live", "detail": "resume"}]
    assert running._switch.events() == []
    with (tmp_path / settings.project / "autoscale.log").open("a") as fh:
        fh.write('{"autoscale": "explode"}\nnot json\n{"autoscale": "pa')  # junk and a half-written line
    assert running._switch.events() == []
    with (tmp_path / settings.project / "autoscale.log").open("a") as fh:
        fh.write('use"}\n')
    assert [e["detail"] for e in running._switch.events()] == ["pause"]
    with pytest.raises(ValueError, match="pause, resume"):
        write_switch(tmp_path, "off")
    assert SwitchReader(tmp_path / "nowhere").events() == []


def test_compose_scale_calls_never_overlap_and_the_newest_request_wins(tmp_path: Any) -> None:
    """A scaler without a cooldown decides every second; the runner scales from a thread per decision.
    Overlapping `compose up --scale` calls raced on real compose ("No such container"): one at a time now."""
    import threading
    import time

    from scalelab.platforms.compose import ComposePlatform, ComposeSettings
    from scalelab.scenario import load_scenario

    settings = ComposeSettings.for_scenario(load_scenario("ci-spike", cpu_budget=1.0), "unit-scale", port=18081)
    platform = ComposePlatform(settings, state_root_dir=tmp_path)
    calls: list[int] = []
    inside = threading.Semaphore(1)
    overlapped: list[bool] = []

    def fake_compose(*args: str, fix: str = "") -> None:
        overlapped.append(not inside.acquire(blocking=False))
        calls.append(int(args[args.index("--scale") + 1].split("=")[1]))
        time.sleep(0.05)  # a slow scale-down
        inside.release()

    platform._compose = fake_compose  # type: ignore[method-assign]
    first = threading.Thread(target=platform.scale, args=(9,))
    first.start()
    time.sleep(0.01)
    threads = [threading.Thread(target=platform.scale, args=(n,)) for n in (8, 7, 6)]
    for th in threads:
        th.start()
        time.sleep(0.005)
    for th in [first, *threads]:
        th.join(timeout=5)
    assert not any(overlapped), "two compose calls ran at once"
    assert calls[0] == 9 and calls[-1] == 6, calls  # the newest request is what runs at the end
    assert len(calls) <= 2, f"requests made stale while waiting are not applied one by one: {calls}"
    platform.scale(6)
    assert len(calls) <= 2, "a request already applied is not sent again"
