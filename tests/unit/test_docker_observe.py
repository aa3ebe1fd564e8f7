"""One second of Docker containers -> the runner's Observation (compose and swarm share it)."""

from __future__ import annotations

import pytest

from scalelab.platforms.docker_observe import container_observation


def test_sums_per_replica_figures_and_placement() -> None:
    obs = container_observation(
        desired=3,
        names={"aaaaaaaaaaaa1": "r1", "bbbbbbbbbbbb2": "r2"},
        ready={"aaaaaaaaaaaa1"},
        readings={"aaaaaaaaaaaa1": (0.25, 64 * 2**20), "bbbbbbbbbbbb2": (None, None)},
        cpus=0.5,
        memory_mb=128,
        events=[],
        node_of=lambda cid: f"node-{cid[0]}",
        in_flight={"aaaaaaaaaaaa1": 2.0},
    )
    assert (obs.replicas_desired, obs.replicas_ready, obs.replicas_measured) == (3, 1, 2)
    assert obs.cpu_cores_used == pytest.approx(0.25) and obs.mem_mb == pytest.approx(64)
    r1, r2 = obs.replicas
    assert (r1.name, r1.ready, r1.cpu_pct_of_limit, r1.mem_pct_of_limit, r1.in_flight) == ("r1", True, 50.0, 50.0, 2.0)
    assert (r2.ready, r2.cpu_pct_of_limit, r2.mem_pct_of_limit, r2.in_flight) == (False, None, None, None)
    assert [(p["pod"], p["node"], p["ready"]) for p in obs.placement] == [("aaaaaaaaaaaa", "node-a", 1), ("bbbbbbbbbbbb", "node-b", 0)]


def test_nothing_running_is_zero_not_unknown() -> None:
    obs = container_observation(desired=2, names={}, ready=set(), readings={}, cpus=0.5, memory_mb=128, events=[], node_of=str)
    assert (obs.cpu_cores_used, obs.mem_mb, obs.replicas, obs.placement) == (0.0, 0.0, [], [])


def test_running_but_not_yet_measured_is_unknown() -> None:
    obs = container_observation(desired=1, names={"c": "r"}, ready=set(), readings={"c": (None, None)}, cpus=0.5, memory_mb=128, events=[], node_of=str)
    assert obs.cpu_cores_used is None and obs.mem_mb is None
