"""Load profiles are pure functions of time: values at chosen instants."""

from __future__ import annotations

import pytest

from scalelab.load.profiles import day, level_at, profile_for, spike, spike_window, steady, wave
from scalelab.scenario import Load, load_scenario


def test_steady() -> None:
    assert steady(0, baseline=3.0) == 3.0
    assert steady(1e6, baseline=3.0) == 3.0


def test_spike_without_ramp() -> None:
    f = dict(baseline=2.0, factor=10.0, start_s=30.0, length_s=60.0)
    assert spike(0, **f) == 2.0
    assert spike(29.99, **f) == 2.0
    assert spike(30, **f) == 20.0
    assert spike(89.9, **f) == 20.0
    assert spike(90, **f) == 2.0
    assert spike(200, **f) == 2.0


def test_spike_ramps_linearly() -> None:
    f = dict(baseline=1.0, factor=11.0, start_s=10.0, length_s=20.0, ramp_s=2.0)
    assert spike(10, **f) == 1.0
    assert spike(11, **f) == pytest.approx(6.0)  # halfway up
    assert spike(12, **f) == pytest.approx(11.0)
    assert spike(31, **f) == pytest.approx(6.0)  # halfway down
    assert spike(32, **f) == pytest.approx(1.0)


def test_wave() -> None:
    f = dict(baseline=2.0, factor=3.0, period_s=100.0)
    assert wave(0, **f) == pytest.approx(2.0)
    assert wave(50, **f) == pytest.approx(6.0)  # the crest
    assert wave(25, **f) == pytest.approx(4.0)
    assert wave(100, **f) == pytest.approx(2.0)


def test_day_levels() -> None:
    f = dict(baseline=10.0, factor=2.0, night_factor=0.5, duration_s=2400.0)  # one hour = 100 s
    assert day(0, **f) == pytest.approx(5.0)  # night
    assert day(800, **f) == pytest.approx(10.0)  # 08:00 normal
    assert day(1250, **f) == pytest.approx(20.0)  # 12:30 peak
    assert day(1500, **f) == pytest.approx(10.0)  # 15:00 normal
    assert day(2000, **f) == pytest.approx(5.0)  # 20:00 night


def test_profile_for_matches_the_functions() -> None:
    load = Load(profile="spike", baseline=4.0, factor=5.0, start_s=10, length_s=5)
    f = profile_for(load, 60)
    assert [f(t) for t in (0, 10, 14, 15)] == [4.0, 20.0, 20.0, 4.0]
    assert level_at(load, 60, 12) == 20.0
    assert spike_window(load, 60) == (10, 15)
    assert spike_window(Load(profile="steady", baseline=1.0), 60) is None


def test_classroom_spike_on_a_one_core_budget() -> None:
    """The compose story on this 2-core machine: 0.125 cores a replica, 1.1 -> 11 rps, 8 x 0.125 = 1 core."""
    sc = load_scenario("classroom-spike", cpu_budget=1.0)
    assert sc.workload.cpu_limit == pytest.approx(0.125)
    f = profile_for(sc.load, sc.duration_s)
    assert f(10) == pytest.approx(1.125)
    assert f(60) == pytest.approx(11.25)
    assert f(150) == pytest.approx(1.125)
    arm = sc.arms["compose-manual"]
    assert arm.replicas == 3
    assert [(a.at_s, a.replicas) for a in arm.scaler.actions] == [(60.0, 8)]
    capacity = lambda n: n * sc.workload.cpu_limit / (sc.workload.work_ms / 1000)  # requests/s n replicas can serve  # noqa: E731
    assert f(60) > capacity(3) * 1.3  # the spike overloads 3 replicas
    assert f(60) < capacity(8) * 0.6  # and 8 carry it
    assert 8 * sc.workload.cpu_limit == pytest.approx(1.0)


def test_a_profile_over_an_array_of_times_equals_it_second_by_second() -> None:
    import numpy as np

    from scalelab.load.profiles import profile_for
    from scalelab.scenario import load_scenario

    for name in ("day", "classroom-spike", "ci-spike"):
        sc = load_scenario(name)
        profile = profile_for(sc.load, sc.duration_s)
        times = np.arange(int(sc.duration_s), dtype=float)
        assert np.array_equal(profile(times), [profile(float(t)) for t in times.tolist()]), name
        assert isinstance(profile(3.0), float)
