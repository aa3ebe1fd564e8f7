"""Rollouts without Docker or a cluster: scenario fields, manifests, measurement, the compose hook's steps."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from scalelab import images, safety, versions
from scalelab.errors import ScenarioError
from scalelab.platforms import k8s_manifests as km
from scalelab.rollout import act
from scalelab.rollout.kubernetes import rollout_progress
from scalelab.rollout.measure import as_fault_rows, rollout_impacts
from scalelab.scenario import Scenario, load_scenario
from scalelab.scenario_io import describe_errors

K8S = Path(__file__).resolve().parents[2] / "k8s"
RUN_ID = "20261204-230000-ci-rollout-kubernetes-rolling-1a2b"


def _scenario(arm_rollout: dict[str, Any] | None, platform: str = "kubernetes", rollout: dict[str, Any] | None = None) -> Scenario:
    arm: dict[str, Any] = {"platform": platform, "scaler": {"type": "fixed"}, "replicas": 2}
    if arm_rollout is not None:
        arm["rollout"] = arm_rollout
    return Scenario.model_validate({"name": "r", "duration_s": 30, "load": {"baseline": 2, "profile": "steady"}, "arms": {"a": arm},
                                    "rollout": rollout if rollout is not None else {"at_s": 10}})


def _error(arm_rollout: dict[str, Any], platform: str = "kubernetes", rollout: dict[str, Any] | None = None) -> str:
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as info:
        _scenario(arm_rollout, platform, rollout)
    return describe_errors(Path("s.yaml"), info.value)


# --- scenario fields ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arm_rollout", "platform", "rollout", "message"),
    [
        ({"strategy": "rolling"}, "compose", None, "rollout.strategy 'rolling' is not one of compose's: recreate, double-then-retire"),
        ({"pre_stop_s": 5}, "compose", None, "rollout.pre_stop_s applies to platform kubernetes only, not compose"),
        ({"health_timeout_s": 10}, "kubernetes", None, "rollout.health_timeout_s applies to platform compose only"),
        ({"pre_stop_s": 30, "grace_s": 30}, "kubernetes", None, "pre_stop_s (30) must be shorter than grace_s (30)"),
        ({"max_surge": 0, "max_unavailable": "0%"}, "kubernetes", None, "cannot both be 0"),
        ({"max_surge": "150%"}, "kubernetes", None, "'150%' is not a percentage"),
        ({"max_surge": True}, "kubernetes", None, "True is neither a number of pods"),
        ({"strategy": "recreate", "max_surge": 1}, "kubernetes", None, "apply to strategy rolling, not recreate"),
        ({"strategy": "recreate"}, "swarm", None, "rollout.strategy 'recreate' is not one of swarm's: update"),
        (None, "kubernetes", {"at_s": 30}, "rollout: at_s 30 is not before the end of the load"),
        (None, "kubernetes", {"at_s": 5, "to": "v3"}, "field 'rollout.to'"),
    ],
)
def test_bad_rollout_fields_are_named_with_the_allowed_values(arm_rollout, platform, rollout, message) -> None:
    assert message in _error(arm_rollout or {}, platform, rollout)


def test_the_builtin_rollout_scenario_sizes_and_keeps_its_settings() -> None:
    sc = load_scenario("ci-rollout", cpu_budget=1)
    assert sc.rollout is not None and (sc.rollout.at_s, sc.rollout.to) == (15.0, "v2")
    strategies = {name: act.effective(arm.platform, arm.rollout).strategy for name, arm in sc.arms.items()}
    assert strategies == {"compose-recreate": "recreate", "compose-double": "double-then-retire", "kubernetes-rolling": "rolling",
                          "kubernetes-naive": "rolling", "swarm-stop-first": "update", "swarm-start-first": "update"}
    assert act.effective("compose", None).strategy == "recreate" and act.effective("kubernetes", None).strategy == "rolling"


# --- Kubernetes manifests ----------------------------------------------------------------------------


def _deployment(arm_rollout: dict[str, Any] | None) -> dict[str, Any]:
    return km.render(_scenario(arm_rollout), "a", RUN_ID, k8s_dir=K8S).deployment


def test_rolling_settings_land_in_the_deployment_and_stay_restricted() -> None:
    dep = _deployment({"max_surge": 1, "max_unavailable": "0%", "pre_stop_s": 3, "grace_s": 20, "min_ready_s": 2})
    spec, pod = dep["spec"], dep["spec"]["template"]["spec"]
    (agent,) = pod["containers"]
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": "0%"}}
    assert spec["minReadySeconds"] == 2 and pod["terminationGracePeriodSeconds"] == 20
    assert agent["lifecycle"] == {"preStop": {"sleep": {"seconds": 3}}} and agent["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert safety.restricted_violations(pod, meta=dep["spec"]["template"]["metadata"]) == []


def test_recreate_and_no_readiness() -> None:
    dep = _deployment({"strategy": "recreate", "readiness": False})
    (agent,) = dep["spec"]["template"]["spec"]["containers"]
    assert dep["spec"]["strategy"] == {"type": "Recreate"} and "readinessProbe" not in agent and "lifecycle" not in agent
    assert "strategy" not in _deployment(None)["spec"]  # no rollout section: the manifest as written (Kubernetes' defaults)


def test_rollout_progress_reads_the_deployment_like_kubectl() -> None:
    def dep(gen: int, seen: int, updated: int, total: int, available: int) -> dict[str, Any]:
        return {"metadata": {"generation": gen}, "spec": {"replicas": 2},
                "status": {"observedGeneration": seen, "updatedReplicas": updated, "replicas": total, "availableReplicas": available}}

    assert rollout_progress(dep(2, 1, 2, 2, 2)) == (False, "waiting for the Deployment controller to see the new pod template")  # old status
    assert rollout_progress(dep(2, 2, 1, 3, 2)) == (False, "updated 1/2, available 2, old 2")
    assert rollout_progress(dep(2, 2, 2, 3, 2))[0] is False  # an old pod is still counted
    assert rollout_progress(dep(2, 2, 2, 2, 2)) == (True, "updated 2/2, available 2, old 0")


# --- measurement -------------------------------------------------------------------------------------


def _req(t: float, ok: bool = True, version: str = "v1", code: int = 200, error: str = "", ms: float = 60.0) -> dict[str, Any]:
    return {"t_s": t, "response_ms": ms, "ok": int(ok), "status_code": code, "replica": "r" if ok else "", "version": version if ok else "", "error": error}


def test_rollout_impact_from_records() -> None:
    reqs = [_req(t / 2) for t in range(0, 30)]  # v1 until 15 s
    reqs += [_req(15.5, ok=False, code=502, error="BadStatusCode: 502", ms=3), _req(16.0, ok=False, error="ConnectionRefusedError: refused", ms=1)]
    reqs += [_req(16.5, version="v1"), _req(17.0, version="v2"), _req(18.0, version="v1")]
    reqs += [_req(18 + t / 2, version="v2", ms=100 + t) for t in range(1, 20)]
    reqs += [_req(24.2, version="v1")]  # an old answer after the end
    events = [{"t_s": 15.0, "kind": "rollout_start", "detail": "strategy=recreate to=v2 image=scalelab-ai-agent:0.1.0-v2 replicas=2"},
              {"t_s": 15.2, "kind": "rollout", "detail": "docker compose up -d"},
              {"t_s": 16.1, "kind": "replica_start", "detail": "new-1"}, {"t_s": 19.0, "kind": "replica_ready", "detail": "new-1"},
              {"t_s": 22.5, "kind": "rollout_end", "detail": "ok wall_s=7.50 replicas=2 on scalelab-ai-agent:0.1.0-v2"}]
    samples = [{"t_s": t, "replicas_ready": 0 if 16 <= t <= 18 else 2} for t in range(1, 30)]
    (imp,) = rollout_impacts(reqs, events, samples)
    assert (imp.strategy, imp.to, imp.ok, imp.wall_s) == ("recreate", "v2", True, 7.5)
    assert imp.failed == 2 and imp.by_class["5xx"] == 1 and imp.by_class["refused"] == 1 and imp.error_window_s == 0.5
    assert (imp.first_new_s, imp.last_old_s, imp.old_after_end) == (2.0, 9.2, 1)
    assert (imp.ready_before, imp.ready_min) == (2, 0)
    assert (imp.first_replica_start_s, imp.first_replica_ready_s) == (1.1, 4.0)
    assert imp.max_ms == 109 and imp.p99_ms == 109  # latencies up to the end (22.5 s): the v2 answer at 22.5 s took 109 ms
    (row,) = as_fault_rows("compose", [imp])
    assert row["kind"] == "rollout:recreate" and row["to_desired_s"] == 7.5 and row["failed_5xx"] == 1


def test_a_rollout_the_run_outlived_without_an_end_is_not_ok() -> None:
    events = [{"t_s": 5.0, "kind": "rollout_start", "detail": "strategy=rolling to=v2 image=x replicas=2"}]
    (imp,) = rollout_impacts([_req(6.0)], events)
    assert imp.ok is False and imp.wall_s is None and "no rollout_end" in imp.detail
    failed = [{"t_s": 5.0, "kind": "rollout_start", "detail": "strategy=rolling to=v2"}, {"t_s": 9.0, "kind": "rollout_end", "detail": "failed: timeout"}]
    assert rollout_impacts([], failed)[0].ok is False


def test_old_runs_without_a_version_column_read_back(tmp_path: Path) -> None:
    from scalelab.telemetry import schema
    from scalelab.telemetry.store import _read_csv

    path = tmp_path / "requests.csv"
    path.write_text("t_s,response_ms,ok,status_code,replica,error\n1.0,50,1,200,abc,\n")
    frame = _read_csv(path, schema.REQUEST_COLUMNS, required=False, later=schema.LATER_REQUEST_COLUMNS)
    assert list(frame.columns)[-1] == "version" and frame.version.isna().all()


# --- the compose hook's steps, on a fake platform (the real one: tests/integration/test_rollout_live.py) --


class FakeCompose:
    name = "compose"

    def __init__(self) -> None:
        from scalelab.platforms.compose_settings import ComposeSettings

        self.settings = ComposeSettings(project="scalelab-x", run_id="x")
        self.desired = 2
        self.containers = [{"Id": "old1", "Image": versions.AGENT_IMAGE}, {"Id": "old2", "Image": versions.AGENT_IMAGE}]
        self.calls: list[tuple[str, ...]] = []

    def _containers(self, *, running_only: bool = False, healthy_only: bool = False) -> list[dict[str, Any]]:
        return list(self.containers)

    def _compose(self, *args: str, fix: str, timeout_s: float = 300.0) -> None:
        self.calls.append(args)
        n = int(next(a for a in args if a.startswith("ai-agent=")).split("=")[1])
        image = self.settings.agent_image
        if "--no-recreate" not in args:
            self.containers = []
        self.containers += [{"Id": f"new{i}", "Image": image} for i in range(n - len(self.containers))]

    def current_replicas(self) -> int:
        return self.desired


def _roll(strategy: str, monkeypatch: pytest.MonkeyPatch) -> tuple[FakeCompose, list[tuple[str, str]], list[list[str]]]:
    from scalelab.rollout import compose as rc

    docker: list[list[str]] = []

    def fake_run(argv: list[str], **_: Any) -> None:
        docker.append([str(a) for a in argv])
        gone = {str(a) for a in argv[2:]}
        plat.containers = [c for c in plat.containers if c["Id"] not in gone]

    monkeypatch.setattr(rc._run, "run", fake_run)
    plat = FakeCompose()
    steps: list[tuple[str, str]] = []
    how = act.effective("compose", _scenario({"strategy": strategy}, "compose").arms["a"].rollout)
    summary = rc.ComposeRoller(plat).roll(versions.AGENT_IMAGE_V2, how, lambda k, d: steps.append((k, d)), threading.Event(), 10.0)
    assert summary == f"replicas=2 on {versions.AGENT_IMAGE_V2}"
    assert plat.settings.agent_image == versions.AGENT_IMAGE_V2  # later scale calls keep v2
    return plat, steps, docker


def test_compose_recreate_is_one_compose_up(monkeypatch: pytest.MonkeyPatch) -> None:
    plat, steps, docker = _roll("recreate", monkeypatch)
    (call,) = plat.calls
    assert "--no-recreate" not in call and "ai-agent=2" in call and docker == []
    assert {c["Image"] for c in plat.containers} == {versions.AGENT_IMAGE_V2}
    assert steps[-1] == ("rollout", f"2/2 replicas on {versions.AGENT_IMAGE_V2} healthy")


def test_compose_double_then_retire_stops_the_old_only_after_the_new_are_healthy(monkeypatch: pytest.MonkeyPatch) -> None:
    plat, steps, docker = _roll("double-then-retire", monkeypatch)
    (call,) = plat.calls
    assert "--no-recreate" in call and "ai-agent=4" in call
    assert docker == [["docker", "stop", "old1", "old2"], ["docker", "rm", "old1", "old2"]]
    assert [c["Id"] for c in plat.containers] == ["new0", "new1"]
    order = [d for _, d in steps]
    assert order.index(f"2/2 replicas on {versions.AGENT_IMAGE_V2} healthy") < order.index("2 new replicas healthy; stopping the 2 old ones (SIGTERM, drain)")


def test_the_schedule_refuses_a_platform_without_a_hook() -> None:
    class Toy:
        name = "toy"

    sched = act.RolloutSchedule(_scenario(None), "a", Toy())
    with pytest.raises(ScenarioError, match="rollouts cannot run on toy"):
        sched.check("s.yaml")
    assert act.RolloutSchedule(_scenario(None).model_copy(update={"rollout": None}), "a", Toy()).next_due_s() is None


# --- the v2 image --------------------------------------------------------------------------------------


def test_v2_image_is_one_layer_on_v1() -> None:
    text = images.AGENT_V2_DOCKERFILE
    assert f"FROM {versions.AGENT_IMAGE}\n" in text and "ENV AGENT_VERSION=v2" in text and "RUN" not in text
    assert versions.agent_image("v2") == versions.AGENT_IMAGE_V2 != versions.AGENT_IMAGE and not versions.AGENT_IMAGE_V2.endswith(":latest")
