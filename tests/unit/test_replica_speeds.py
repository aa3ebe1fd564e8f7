"""`scalelab calibrate` fits how much the replicas' service rates differ (``sim.replica_speed_cv``)."""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest

from scalelab.errors import ScenarioError
from scalelab.scenario import apply_overrides, load_scenario
from scalelab.sim import prepare_scenario
from scalelab.sim.calibrate import Calibration, _replica_speed_cv, _saturated_seconds, fitted_scenario

SECONDS = 60


def _counts(rate: float) -> list[int]:
    """Requests a replica at its limit answers in each second: a fixed service time, so 2, 2, 3, ... for 2.2/s."""
    return [math.floor(rate * (t + 1)) - math.floor(rate * t) for t in range(SECONDS)]


def _run(rates: list[float], *, timeouts_at: tuple[int, ...] = (), slow_while_timing_out: float | None = None) -> Any:
    """A recorded run reduced to what the fit reads: per-replica requests, in flight and CPU per
    second (every replica saturated at its limit), and the run's errors per second."""
    scenario = prepare_scenario("classroom-spike")
    limit = float(scenario.workload.cpu_limit)
    rows = []
    for i, rate in enumerate(rates):
        for t, n in enumerate(_counts(rate)):
            if slow_while_timing_out is not None and i == 0 and t >= SECONDS // 2:
                n = _counts(slow_while_timing_out)[t]  # the replica holding the timed-out requests answers fewer
            rows.append({"t_s": t + 1, "replica": f"ai-agent-{i}", "requests": n, "in_flight": 6.0, "ready": 1,
                         "cpu_cores": limit * (0.97 + 0.01 * (t % 3))})  # a counter that refreshes: no figure thrice
    samples = pd.DataFrame({"t_s": range(1, SECONDS + 1), "errors": [3 if t in timeouts_at else 0 for t in range(1, SECONDS + 1)]})
    return SimpleNamespace(manifest={"platform": "kubernetes"}, replicas=pd.DataFrame(rows), samples=samples, scenario=scenario)


def _fit(run: Any) -> float | None:
    """The fit as `calibrate` makes it: on the run's saturated replica-seconds."""
    return _replica_speed_cv(_saturated_seconds(run))


def test_equal_replicas_fit_no_spread() -> None:
    assert _fit(_run([2.2, 2.2, 2.2, 2.2])) == 0.0


def test_the_spread_of_the_rates_beyond_counting_noise() -> None:
    rates = [1.8, 2.0, 2.2, 2.4]
    true_cv = pd.Series(rates).std() / pd.Series(rates).mean()
    assert _fit(_run(rates)) == pytest.approx(true_cv, abs=0.01)


def test_seconds_near_a_timeout_do_not_count() -> None:
    # the second half of the run has client timeouts every few seconds: the replica holding them answers
    # fewer, which the model charges on its own (the CPU of a timeout), so those seconds are left out
    timeouts = tuple(range(SECONDS // 2 + 12, SECONDS + 1, 4))  # none within the timeout + 2 s after the first half
    assert _fit(_run([2.2, 2.2, 2.2, 2.2], timeouts_at=timeouts, slow_while_timing_out=1.6)) == 0.0
    assert _fit(_run([2.2, 2.2, 2.2, 2.2], slow_while_timing_out=1.6)) > 0.05  # the same rates counted


def test_too_few_replicas_or_seconds_fit_nothing() -> None:
    assert _fit(_run([2.0, 2.4])) is None
    quiet = _run([2.0, 2.2, 2.4])
    quiet.replicas["in_flight"] = 0.5  # never saturated
    assert _fit(quiet) is None
    assert _fit(SimpleNamespace(manifest={"platform": "sim"})) is None  # a simulated run has no per-replica table


def test_the_fit_travels_as_an_override_and_into_the_scenario() -> None:
    cal = Calibration("r", 50.0, None, None, 100, 0, replica_speed_cv=0.05)
    assert "sim.replica_speed_cv=0.050" in cal.overrides()
    scenario = load_scenario("classroom-spike", sized=False)
    assert scenario.sim.replica_speed_cv == 0.0  # by default every replica serves at the same rate
    assert fitted_scenario(scenario, cal).sim.replica_speed_cv == 0.05
    assert apply_overrides(scenario, cal.overrides()).sim.replica_speed_cv == 0.05


def test_an_impossible_spread_names_the_field() -> None:
    with pytest.raises(ScenarioError, match="sim.replica_speed_cv"):
        apply_overrides(load_scenario("classroom-spike", sized=False), ["sim.replica_speed_cv=0.9"])
