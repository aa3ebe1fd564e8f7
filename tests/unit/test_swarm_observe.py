"""The swarm platform's per-second observation, on the Engine API answers of a task that warms up.

Swarm reports a task with a healthcheck as ``starting`` until the check passes, though its
container already runs (and burns CPU). The kit counts a replica from its container's start, as
on compose, so the warm-up shows as running-not-ready and the simulator's start delay is the
scale command -> container running (issue 13, docs/swarm.md).
"""

from __future__ import annotations

from typing import Any

from scalelab.platforms.swarm import SwarmPlatform
from scalelab.platforms.swarm_stack import SwarmSettings

SETTINGS = SwarmSettings(stack="scalelab-unit", run_id="unit", replicas=2, cpus=0.125)
SERVICE = SETTINGS.service


def _task(slot: int, state: str, cid: str | None, err: str | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"State": state, "ContainerStatus": {"ContainerID": cid} if cid else {}}
    if err:
        status["Err"] = err
    return {"ServiceID": "svc", "Slot": slot, "NodeID": "n1", "DesiredState": "running", "Status": status}


class FakeAPI:
    def __init__(self) -> None:
        self.tasks_now: list[dict[str, Any]] = []
        self.running: set[str] = set()
        self.healthy: set[str] = set()

    def inspect_service(self, name: str) -> dict[str, Any]:
        return {"Spec": {"Mode": {"Replicated": {"Replicas": 3}}}}

    def tasks(self, filters: dict[str, str]) -> list[dict[str, Any]]:
        assert filters == {"service": SERVICE, "desired-state": "running"}
        return self.tasks_now

    def containers(self, filters: dict[str, str]) -> list[dict[str, str]]:
        assert filters["label"] == f"com.docker.swarm.service.name={SERVICE}" and filters["status"] == "running"
        return [{"Id": c} for c in sorted(self.healthy if filters.get("health") == "healthy" else self.running)]

    def nodes(self) -> list[dict[str, Any]]:
        return [{"ID": "n1", "Description": {"Hostname": "vm"}}]


class FakeStreams:
    def read(self, running: list[str], now: float) -> dict[str, tuple[float | None, int | None]]:
        return {cid: (0.1, 64 * 2**20) for cid in running}

    def stop(self) -> None:
        pass


class FakeSDK:
    def __init__(self) -> None:
        self.api = FakeAPI()


def test_a_starting_task_runs_before_it_is_ready_and_its_cpu_counts() -> None:
    platform = SwarmPlatform(SETTINGS)
    sdk = FakeSDK()
    platform._sdk, platform._streams = sdk, FakeStreams()
    platform.desired = 3
    api = sdk.api
    a, b, c = "a" * 64, "b" * 64, "c" * 64
    api.tasks_now = [_task(1, "running", a), _task(2, "running", b), _task(3, "preparing", None)]
    api.running, api.healthy = {a, b}, {a, b}
    first = platform.observe()
    assert (first.replicas_ready, first.replicas_measured) == (2, 2)

    # task 3's container has started; swarm still says "starting" while its healthcheck has not passed
    api.tasks_now[2] = _task(3, "starting", c)
    api.running = {a, b, c}
    warming = platform.observe()
    assert (warming.replicas_ready, warming.replicas_measured) == (2, 3)
    assert warming.cpu_cores_used is not None and abs(warming.cpu_cores_used - 0.3) < 1e-9
    assert [(e["kind"], e["detail"]) for e in warming.events] == [("replica_start", f"{SERVICE}.3.{c[:12]}")]
    assert {row["pod"]: row["ready"] for row in warming.placement} == {a[:12]: 1, b[:12]: 1, c[:12]: 0}

    api.tasks_now[2] = _task(3, "running", c)
    api.healthy = {a, b, c}
    ready = platform.observe()
    assert (ready.replicas_ready, ready.replicas_measured) == (3, 3)
    assert [(e["kind"], e["detail"]) for e in ready.events] == [("replica_ready", f"{SERVICE}.3.{c[:12]}")]


def test_a_task_whose_container_is_gone_is_not_running_and_a_scheduler_error_is_a_note() -> None:
    platform = SwarmPlatform(SETTINGS)
    sdk = FakeSDK()
    platform._sdk, platform._streams = sdk, FakeStreams()
    platform.desired = 3
    a, b = "a" * 64, "b" * 64
    sdk.api.tasks_now = [_task(1, "running", a), _task(2, "running", b),
                         _task(3, "pending", None, err="no suitable node (max replicas per node limit exceed)")]
    sdk.api.running, sdk.api.healthy = {a}, {a}  # b's container was killed; swarm has not noticed yet
    obs = platform.observe()
    assert (obs.replicas_ready, obs.replicas_measured) == (1, 1)
    notes = [e["detail"] for e in obs.events if e["kind"] == "note"]
    assert notes == [f"task {SERVICE}.3 pending: no suitable node (max replicas per node limit exceed)"]
