"""Fault scheduling and measurement on synthetic records (no Docker, no cluster)."""

from __future__ import annotations

import pytest

from scalelab.errors import ScenarioError
from scalelab.faults.inject import check_supported, pick
from scalelab.faults.measure import classify, fault_impacts
from scalelab.scenario import Scenario, load_scenario


def _req(t, ok=True, code=200, replica="a", error="", ms=50.0):
    return {"t_s": t, "response_ms": ms, "ok": int(ok), "status_code": code, "replica": replica, "error": error}


@pytest.mark.parametrize(
    ("code", "error", "cls"),
    [
        (502, "BadStatusCode: 502", "5xx"),
        (0, "ConnectionRefusedError: [Errno 111] Connection refused", "refused"),
        (0, "ConnectionResetError: [Errno 104] Connection reset by peer", "reset"),
        (0, "timeout: timed out", "timeout"),
        (0, "dropped: more than 200 requests in flight", "dropped"),
        (0, "something else", "other"),
    ],
)
def test_classify(code, error, cls):
    assert classify(code, error) == cls


def test_kill_without_replacement_compose_like():
    """Two replicas, one killed at 10 s and never replaced: errors only around the kill, ready stays 1."""
    reqs = [_req(t / 2, replica="a" if t % 2 else "b") for t in range(0, 20)]
    reqs += [_req(10.1, ok=False, code=502, replica="", error="BadStatusCode 502", ms=3), _req(10.3, ok=False, code=0, replica="", error="Connection reset by peer", ms=200)]
    reqs += [_req(10 + t / 4, replica="a", ms=80 + t) for t in range(1, 40)]
    events = [{"t_s": 0, "kind": "replica_start", "detail": "a"}, {"t_s": 10.0, "kind": "fault", "detail": "kill replica=b docker kill x"},
              {"t_s": 10.5, "kind": "replica_stop", "detail": "b"}]
    samples = [{"t_s": t, "replicas_ready": 2 if t <= 10 else 1} for t in range(1, 21)]
    (imp,) = fault_impacts(reqs, events, samples)
    assert (imp.kind, imp.replica, imp.failed) == ("kill", "b", 2)
    assert imp.by_class["5xx"] == 1 and imp.by_class["reset"] == 1
    assert imp.first_error_s == 10.1 and imp.last_error_s == 10.3 and imp.error_window_s == pytest.approx(0.2)
    assert imp.to_replacement_s is None and imp.to_ready_s is None and imp.to_first_2xx_s is None
    assert (imp.ready_before, imp.ready_min, imp.to_desired_s) == (2, 1, None)
    assert imp.max_ms == 200 and imp.p99_ms is not None


def test_kill_with_replacement_kubernetes_like():
    reqs = [_req(t / 2, replica="pod-a" if t % 2 else "pod-b") for t in range(0, 20)]
    reqs += [_req(10.2, ok=False, code=0, replica="", error="ConnectionRefusedError: refused")]
    reqs += [_req(10 + t / 2, replica="pod-a") for t in range(1, 10)]
    reqs += [_req(16.0, replica="pod-c"), _req(17.0, replica="pod-c")]
    events = [{"t_s": 10.0, "kind": "fault", "detail": "kill replica=pod-b delete pod"},
              {"t_s": 11.0, "kind": "replica_start", "detail": "pod-c"}, {"t_s": 15.0, "kind": "replica_ready", "detail": "pod-c"}]
    samples = [{"t_s": t, "replicas_ready": 1 if 11 <= t <= 15 else 2} for t in range(1, 21)]
    (imp,) = fault_impacts(reqs, events, samples)
    assert imp.by_class["refused"] == 1 and imp.failed == 1 and imp.error_window_s == 0
    assert (imp.to_replacement_s, imp.to_ready_s, imp.to_first_2xx_s, imp.to_desired_s) == (1.0, 5.0, 6.0, 6.4)  # sample 16 was observed at 16.4 s
    assert imp.ready_min == 1


def test_restarted_victim_counts_as_the_replacement_once_ready():
    reqs = [_req(9.5, replica="c1"), _req(9.6, replica="c2"), _req(10.4, replica="c1"), _req(13.0, replica="c1"), _req(14.0, replica="c2")]
    events = [{"t_s": 10.0, "kind": "fault", "detail": "crash replica=c2 kill -9"}, {"t_s": 13.5, "kind": "replica_ready", "detail": "c2"}]
    (imp,) = fault_impacts(reqs, events, [])
    assert imp.to_first_2xx_s == 4.0 and imp.failed == 0 and imp.first_error_s is None


def test_two_faults_split_the_records():
    reqs = [_req(5.5, ok=False, code=502), _req(12, ok=False, code=504)]
    events = [{"t_s": 5.0, "kind": "fault", "detail": "kill replica=x"}, {"t_s": 10.0, "kind": "fault", "detail": "hang replica=y"}]
    a, b = fault_impacts(reqs, events, [])
    assert (a.failed, b.failed, b.kind) == (1, 1, "hang")


def test_no_faults_no_impacts():
    assert fault_impacts([_req(1)], [{"t_s": 0, "kind": "phase", "detail": "load"}], []) == []


def test_pick_is_seeded_and_order_free():
    assert pick(["b", "a", "c"], 11, 0) == pick(["c", "a", "b"], 11, 0)
    assert {pick(["a", "b", "c"], s, 0) for s in range(20)} == {"a", "b", "c"}


def test_scenario_faults_validated_with_allowed_values():
    base = load_scenario("ci-spike", sized=False).model_dump(mode="json")
    ok = Scenario.model_validate({**base, "faults": [{"at_s": "20s", "kind": "kill"}]})
    assert ok.faults[0].at_s == 20 and ok.faults[0].target == "one"
    with pytest.raises(ValueError) as bad:
        Scenario.model_validate({**base, "faults": [{"at_s": 20, "kind": "explode"}]})
    assert "kill" in str(bad.value) and "crash" in str(bad.value) and "hang" in str(bad.value)
    with pytest.raises(ValueError, match="not before the end"):
        Scenario.model_validate({**base, "faults": [{"at_s": 9999, "kind": "kill"}]})


def test_unsupported_kind_lists_what_the_platform_can_do():
    for platform in ("compose", "swarm", "kubernetes"):
        check_supported(platform, ["kill", "crash", "hang"])
    with pytest.raises(ScenarioError) as err:
        check_supported("kind-of-cloud", ["hang"], "my.yaml")
    assert "my.yaml" in err.value.message and "allowed there: none" in err.value.message and "compose, swarm, kubernetes" in err.value.fix


def test_an_in_place_restart_is_the_replacement_and_is_counted():
    """Kubernetes restarts a crashed container in the same pod: replica_restart, then replica_ready again."""
    reqs = [_req(9.5, replica="pod-b"), _req(12.5, replica="pod-b"), _req(14.0, replica="pod-a")]
    events = [{"t_s": 10.0, "kind": "fault", "detail": "crash replica=pod-b kill -9 of host pid 4242"},
              {"t_s": 10.9, "kind": "replica_restart", "detail": "pod-b restart 1 (Error, exit 137, down 0.4 s)"},
              {"t_s": 12.2, "kind": "replica_ready", "detail": "pod-b on node"}]
    (imp,) = fault_impacts(reqs, events, [])
    assert (imp.to_replacement_s, imp.to_ready_s, imp.to_first_2xx_s, imp.restarts) == (0.9, 2.2, 2.5, 1)


class _FakeInjector:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int, str | None]] = []

    def inject(self, kind: str, index: int, victim: str | None = None):
        from scalelab.faults.inject import Injected

        self.calls.append((kind, index, victim))
        return Injected(kind, victim or f"r{index}", "by hand")


def test_target_same_hits_the_previous_victim():
    from types import SimpleNamespace

    from scalelab.faults.inject import FaultSchedule
    from scalelab.scenario import Fault

    faults = [Fault(at_s=10, kind="crash"), Fault(at_s=16, kind="crash", target="same"), Fault(at_s=30, kind="crash", target="same")]
    sched = FaultSchedule(faults, SimpleNamespace(name="compose"), 14)
    sched.check("ci-crashloop.yaml")
    fake = _FakeInjector()
    sched._injector = fake
    while sched:
        sched.fire_next()
    assert fake.calls == [("crash", 0, None), ("crash", 1, "r0"), ("crash", 2, "r0")]
    first_same = FaultSchedule([Fault(at_s=5, kind="kill", target="same")], SimpleNamespace(name="compose"), 14)
    with pytest.raises(ScenarioError, match="no earlier fault"):
        first_same.check("x.yaml")


def test_host_pid_of_container_is_the_process_whose_parent_is_outside(tmp_path):
    from scalelab.faults.inject import host_pid_of_container

    cid = "4f2c0ffee" + "0" * 55

    def proc(pid: int, ppid: int, cgroup: str) -> None:
        d = tmp_path / str(pid)
        d.mkdir()
        (d / "cgroup").write_text(f"12:freezer:{cgroup}\n3:cpu,cpuacct:{cgroup}\n")
        (d / "status").write_text(f"Name:\tx\nPid:\t{pid}\nPPid:\t{ppid}\n")

    proc(100, 1, "/")                                      # systemd-like, elsewhere
    proc(200, 1, "/system.slice/containerd-shim")          # the shim
    proc(301, 200, f"/kubepods/burstable/pod1234/{cid}")   # the agent (main process)
    proc(302, 301, f"/kubepods/burstable/pod1234/{cid}")   # its child
    proc(400, 200, "/kubepods/burstable/pod1234/pause")    # the pod's pause container
    (tmp_path / "self").mkdir()
    assert host_pid_of_container(cid, tmp_path) == 301
    assert host_pid_of_container("deadbeef" * 8, tmp_path) is None


def test_pod_view_reads_the_last_exit_and_the_time_down():
    from scalelab.platforms.k8s_status import pod_view

    pod = {"metadata": {"name": "ai-agent-x"}, "status": {"phase": "Running", "containerStatuses": [{
        "name": "ai-agent", "restartCount": 2, "state": {"running": {"startedAt": "2026-12-05T02:30:40Z"}},
        "lastState": {"terminated": {"reason": "Error", "exitCode": 137, "finishedAt": "2026-12-05T02:30:30Z"}}}]}}
    v = pod_view(pod)
    assert (v.restarts, v.last_exit, v.down_s) == (2, "Error, exit 137", 10.0)
    assert pod_view({"metadata": {"name": "p"}, "status": {}}).down_s is None


def test_swarm_target_same_follows_the_slot_to_its_new_task(monkeypatch):
    from types import SimpleNamespace

    from scalelab.errors import PlatformError
    from scalelab.faults import inject

    def task(cid: str, slot: int, task_id: str) -> dict:
        return {"Id": cid * 8, "Names": [f"/st_ai-agent.{slot}.{task_id}"], "Labels": {"com.docker.swarm.task.name": f"st_ai-agent.{slot}.{task_id}"}}

    running = [task("aaaaaaaaaaaa"[:8], 1, "t1"), task("bbbbbbbb", 2, "t2")]
    api = SimpleNamespace(containers=lambda filters: list(running))
    platform = SimpleNamespace(name="swarm", settings=SimpleNamespace(service="st_ai-agent"), sdk=SimpleNamespace(api=api))
    commands: list[list[str]] = []
    monkeypatch.setattr(inject._run, "run", lambda cmd, **kw: commands.append(cmd) or SimpleNamespace(stdout="4242\n"))
    inj = inject.SwarmInjector(platform, 14)
    first = inj.inject("crash", 0)
    slot = 1 if first.replica.startswith("a") else 2
    running[slot - 1] = task("cccccccc", slot, "t3")  # Swarm replaced the crashed task: a new container, same slot
    again = inj.inject("crash", 1, victim=first.replica)
    assert again.replica == ("cccccccc" * 8)[:12] and commands[-1] == ["kill", "-9", "4242"]
    running.pop(slot - 1)
    with pytest.raises(PlatformError, match="no task runs in slot"):
        inj.inject("crash", 2, victim=again.replica)
