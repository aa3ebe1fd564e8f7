"""The fluid service model: capacity, overload, timeouts, host budget, cold starts, spreading."""

from __future__ import annotations

import math

import pytest

from scalelab.sim.service import Service, ServiceParams


def params(**kw: object) -> ServiceParams:
    return ServiceParams(**{"work_ms": 50.0, "cpu_limit": 0.5, "warmup_s": 5.0, "start_delay_s": 1.0, "timeout_s": 10.0, **kw})  # type: ignore[arg-type]


def test_under_capacity_serves_everything_quickly() -> None:
    svc = Service(params(), 3)
    for t in range(20):
        s = svc.step(t, 6.0)
    assert s.served == 6.0 and s.errors == 0.0 and s.ready == 3
    assert s.cpu_cores == pytest.approx(6 * 0.05 + 3 * 0.002)
    assert 100.0 <= s.p50_ms <= s.p95_ms < 500.0  # 100 ms of service at half a core


def test_overload_builds_a_queue_then_times_out() -> None:
    svc = Service(params(), 3)  # capacity 30 requests/s
    results = [svc.step(t, 45.0) for t in range(45)]
    assert all(r.served == pytest.approx(30.0) for r in results)
    assert results[5].p95_ms > results[1].p95_ms > 500.0
    assert sum(r.errors for r in results[:15]) == 0.0
    # the queue is at its 10 s bound: the excess fails when the client gives up, 10 s after it came;
    # of what is served only what starts while its client still waits finishes in time: a share
    # x·e^-x / (1 - e^-x) with x = λS per replica (15 requests/s, 0.1 s each)
    x = 15.0 * 0.1
    in_time = x * math.exp(-x) / -math.expm1(-x)
    assert results[-1].errors == pytest.approx(15.0 + 30.0 * (1.0 - in_time), rel=1e-4)  # the smoothed rate, not quite 45 yet
    assert results[-1].p95_ms == pytest.approx(10_000.0)


def test_host_budget_saturates_replicas_together() -> None:
    svc = Service(params(host_cores=2.0), 10)  # 10 x 0.5 cores wanted, 2 available
    s = svc.step(0, 1000.0)
    assert s.served == pytest.approx(40.0)  # 2 cores / 50 ms
    free = Service(params(), 10).step(0, 1000.0)
    assert free.served == pytest.approx(100.0)


def test_new_replicas_are_cold() -> None:
    svc = Service(params(), 1)
    svc.step(0, 1.0)
    svc.scale_to(3, 0.5)  # start at 1.5, ready at 6.5
    ready = [svc.step(t, 1.0).ready for t in range(1, 9)]
    assert ready == [1, 1, 1, 1, 1, 1, 3, 3]  # ready at 6.5: serves from second 7
    kinds = [e.kind for e in svc.drain_events()]
    assert kinds.count("replica_start") == 2 and kinds.count("replica_ready") == 2


def test_scale_down_removes_not_ready_then_newest() -> None:
    svc = Service(params(), 2)
    svc.scale_to(4, 0.0)
    svc.scale_to(3, 0.1)
    assert [r.name for r in svc.live()] == ["ai-agent-1", "ai-agent-2", "ai-agent-3"]
    assert svc.desired == 3


def test_round_robin_waits_less_than_random_spreading() -> None:
    rr = Service(params(spreading="round-robin"), 4)
    rnd = Service(params(spreading="random"), 4)
    for t in range(30):
        a, b = rr.step(t, 32.0), rnd.step(t, 32.0)  # 80 % busy
    assert a.p95_ms < b.p95_ms


def test_no_ready_replica_means_errors() -> None:
    svc = Service(params(), 1)
    svc.scale_to(0, 0.0)
    s = svc.step(0, 5.0)
    assert s.errors == 5.0 and s.served == 0.0 and s.p95_ms is None


def test_replica_speed_levels_have_mean_one_and_the_spread_asked_for() -> None:
    from scalelab.sim.split import speed_levels

    assert speed_levels(0.0, 32) is None
    levels = speed_levels(0.1, 32)
    assert levels is not None and len(levels) == 32
    assert float(levels.mean()) == pytest.approx(1.0, abs=1e-12)  # the pooled model's capacity stays n replicas
    assert float(levels.std() / levels.mean()) == pytest.approx(0.1, rel=0.1)


def _near_saturation(speed_cv: float) -> list[tuple[float, ...]]:
    """Three replicas of 2.5 requests/s each behind random per-request spreading, sent 7.2 a second."""
    svc = Service(params(cpu_limit=0.125, spreading="random", speed_cv=speed_cv), 3)
    return [tuple(svc.step(t, 7.2)) for t in range(300)]


def test_unequal_replica_speeds_lose_more_requests_near_saturation() -> None:
    equal, unequal = _near_saturation(0.0), _near_saturation(0.2)
    errors = lambda rows: sum(r[1] for r in rows)  # noqa: E731
    assert errors(unequal) > errors(equal)  # the slower replicas' queues reach the client's timeout
    assert sum(r[0] for r in unequal) < sum(r[0] for r in equal)
    assert _near_saturation(0.2) == unequal  # the speeds come from the seed and the replica's name


def test_equal_replica_speeds_are_the_model_without_them() -> None:
    svc = Service(params(cpu_limit=0.125, spreading="random"), 3)
    assert _near_saturation(0.0) == [tuple(svc.step(t, 7.2)) for t in range(300)]
    assert svc._split is not None and svc._split.factors is None


def test_each_replica_keeps_its_speed_and_averages_one_over_the_splits() -> None:
    from scalelab.sim.split import SplitQueues

    q = SplitQueues(10.0, 2048, speed_cv=0.1)
    q.sync(["a", "b"])
    assert q.factors is not None
    a = q.factors[:, 0].copy()
    q.sync(["a", "b", "c"])
    assert (q.factors[:, 0] == a).all()  # a new replica does not change the others' speeds
    assert q.factors.mean(axis=0) == pytest.approx(1.0)
    assert not (q.factors[:, 0] == q.factors[:, 2]).all()  # another name, another order of the levels
    q.sync(["c"])
    assert q.factors.shape == (q.r, 1)


def _one_replica_backlog(burst: list[float], seconds: int, work_s: float, rate: float = 0.0) -> list[tuple[float, ...]]:
    """One replica at 0.125 core (``work_s`` of CPU a request) sent ``burst[t]`` requests in second t
    (``rate`` a second as the smoothed arrival rate): the per-replica queues' (served, errors, p50,
    p95, busy core-seconds) of each second."""
    from scalelab.sim.split import SplitQueues

    q = SplitQueues(10.0, 2048)
    q.sync(["a"])
    return [q.step(t, burst[t] if t < len(burst) else 0.0, rate, math.inf, 0.125, work_s) for t in range(seconds)]


def test_a_replica_works_until_its_clients_give_up_and_drops_the_rest_afterwards() -> None:
    from scalelab.sim.split import ABANDON_CPU_S

    rows = _one_replica_backlog([20.0], 14, 0.125)  # 20 requests at 0:00, one answered a second
    served, errors = [r[0] for r in rows], [r[1] for r in rows]
    assert served[:10] == pytest.approx([1.0] * 10) and sum(errors[:9]) == 0.0
    # their clients give up during 0:10: the replica still starts the next one then (it ends after
    # the timeout: an error), the other nine fail in that second and it drops them in the next
    assert served[10] == pytest.approx(1.0) and sum(served[11:]) == 0.0
    assert errors[9] + errors[10] == pytest.approx(10.0) and errors[10] > 9.9 and sum(errors[11:]) == 0.0
    assert rows[11][4] == pytest.approx(9 * ABANDON_CPU_S)  # dropping them is its only work at 0:11
    assert rows[12][4] == 0.0


def test_the_late_share_follows_the_rate_at_which_the_waiting_requests_came() -> None:
    # 30 requests in each of 0:00 and 0:01, none after: at 0:11 the replica (2 a second) reaches
    # requests that came 30 a second, so the client of the one after each it starts leaves within
    # its service time: nothing it answers then is in time, although nothing arrives any more
    quiet, busy = _one_replica_backlog([30.0, 30.0], 14, 0.0625), _one_replica_backlog([30.0, 30.0], 14, 0.0625, rate=30.0)
    figures = lambda rows: [(r[0], r[1], r[4]) for r in rows]  # noqa: E731  (served, errors, CPU)
    assert figures(quiet) == figures(busy)  # the rate now does not matter: the queue's own arrivals do
    assert sum(r[0] - r[1] for r in quiet[:10]) == pytest.approx(20.0)
    assert quiet[11][0] > 0.0 and quiet[11][1] == pytest.approx(30.0)
    # every request is answered in time or fails: 20 in time by 0:10, and at 0:10 the two it answers
    # started 9.8 s after they came (the fluid queue's median), 0.2 s before their clients' timeout
    # at 0.5 s a request: 60% of them late; the other 39.2 of the 60 are errors
    assert sum(r[1] for r in quiet) == pytest.approx(60.0 - 20.0 - 2.0 * 0.4)
