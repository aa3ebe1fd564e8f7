"""The open-loop arrival schedule: the offered rate follows the profile whatever the target does."""

from __future__ import annotations

from pathlib import Path

import pytest

from scalelab.load.plan import LoadPlan
from scalelab.scenario import load_scenario


class FakeClock:
    """Simulated time for the schedule (sleep advances it; no real waiting)."""

    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t

    def sleep(self, dt: float) -> None:
        self.t += dt


def plan_for(tmp_path: Path, budget: float = 1.0) -> LoadPlan:
    sc = load_scenario("classroom-spike", cpu_budget=budget)
    return LoadPlan(scenario=sc, t0_epoch=0.0, requests_csv=tmp_path / "requests.csv", status_file=None)


def test_arrivals_follow_the_spike(tmp_path: Path) -> None:
    plan = plan_for(tmp_path)
    clock = FakeClock()
    times = list(plan.arrivals(sleep=clock.sleep, clock=clock.now))
    assert times == sorted(times) and times[-1] < plan.duration_s
    base = sum(1 for t in times if 0 <= t < 30) / 30
    peak = sum(1 for t in times if 35 <= t < 85) / 50
    after = sum(1 for t in times if 100 <= t < 240) / 140
    assert base == pytest.approx(1.125, rel=0.5)  # 34 expected arrivals: Poisson noise
    assert peak == pytest.approx(11.25, rel=0.15)
    assert after == pytest.approx(1.125, rel=0.25)
    assert peak / after > 7  # "10x" really is ~10x requests/s
    # The schedule is seeded by the scenario: the same run twice gives the same arrivals.
    clock2 = FakeClock()
    assert list(plan.arrivals(sleep=clock2.sleep, clock=clock2.now)) == times


def test_env_round_trip(tmp_path: Path) -> None:
    plan = plan_for(tmp_path)
    scenario_file = tmp_path / "scenario.yaml"
    import yaml

    scenario_file.write_text(yaml.safe_dump(plan.scenario.model_dump(mode="json")))
    back = LoadPlan.from_env(plan.to_env(scenario_file))
    assert back.scenario == plan.scenario
    assert back.t0_epoch == plan.t0_epoch and back.requests_csv == plan.requests_csv
    assert back.closed_users(60) == round(plan.level()(60))


def test_missing_env_is_a_clear_error() -> None:
    from scalelab.errors import ScenarioError

    with pytest.raises(ScenarioError, match="scalelab run"):
        LoadPlan.from_env({})
