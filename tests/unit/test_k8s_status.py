"""Sampler arithmetic and error detection on kubelet text and API JSON (tests/fixtures/k8s/)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scalelab.platforms import k8s_status as st

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "k8s"
NS = "scalelab-153000-1a2b"


def _text(name: str) -> str:
    return (FIX / name).read_text()


def _json(name: str) -> dict:
    return json.loads((FIX / name).read_text())


# --- kubelet resource metrics --------------------------------------------------------------------


def test_prometheus_text_parses_names_labels_values_and_timestamps():
    samples = st.parse_prometheus(_text("kubelet-metrics-resource.handwritten.txt"))
    names = {s.name for s in samples}
    assert {"container_cpu_usage_seconds_total", "container_memory_working_set_bytes", "node_cpu_usage_seconds_total", "scrape_error"} <= names
    first = samples[0]
    assert first.labels == {"container": "ai-agent", "namespace": NS, "pod": "ai-agent-6d4cf56db6-abcde"}
    assert (first.value, first.timestamp_ms) == (12.5, 1763913600000)
    assert [s for s in samples if s.name == "scrape_error"][0].timestamp_ms is None


def test_prometheus_label_values_may_hold_escaped_quotes_and_commas():
    (s,) = st.parse_prometheus('m{a="x,\\"y\\"",b="z"} 1.5e3\n')
    assert s.labels == {"a": 'x,"y"', "b": "z"} and s.value == 1500.0


def test_container_usage_keeps_only_the_run_namespace():
    usage = st.container_usage(_text("kubelet-metrics-resource.handwritten.txt"), NS)
    assert set(usage) == {("ai-agent-6d4cf56db6-abcde", "ai-agent"), ("ai-agent-6d4cf56db6-fghij", "ai-agent")}
    u = usage[("ai-agent-6d4cf56db6-abcde", "ai-agent")]
    assert (u.cpu_seconds, u.cpu_timestamp_ms, u.memory_bytes) == (12.5, 1763913600000, 41943040.0)


def _u(cpu: float, ts_ms: int | None) -> st.ContainerUsage:
    return st.ContainerUsage(cpu_seconds=cpu, cpu_timestamp_ms=ts_ms, memory_bytes=1.0)


def test_cpu_rate_uses_the_kubelet_timestamps_and_holds_between_updates():
    rates = st.CpuRates()
    key = ("p1", "ai-agent")
    assert rates.update({key: _u(10.0, 1_000_000)}, now_s=0) == {}  # one sample: no rate yet
    assert rates.update({key: _u(10.5, 1_001_000)}, now_s=1) == {"p1": pytest.approx(0.5)}
    # counter not refreshed by the kubelet: keep the last rate, count it as held
    assert rates.update({key: _u(10.5, 1_001_000)}, now_s=2) == {"p1": pytest.approx(0.5)}
    assert rates.held == 1
    # next refresh after 2 s of 0.25 cores
    assert rates.update({key: _u(11.0, 1_003_000)}, now_s=3) == {"p1": pytest.approx(0.25)}
    assert rates.intervals_s == [1.0, 2.0]


def test_cpu_rate_sums_containers_per_pod_and_forgets_gone_pods():
    rates = st.CpuRates()
    a, b, c = ("p1", "app"), ("p1", "sidecar"), ("p2", "app")
    rates.update({a: _u(0, 0), b: _u(0, 0), c: _u(0, 0)}, now_s=0)
    out = rates.update({a: _u(0.3, 1000), b: _u(0.1, 1000), c: _u(0.2, 1000)}, now_s=1)
    assert out == {"p1": pytest.approx(0.4), "p2": pytest.approx(0.2)}
    assert rates.update({c: _u(0.4, 2000)}, now_s=2) == {"p2": pytest.approx(0.2)}


def test_cpu_rate_restarts_cleanly_after_a_container_restart_and_without_timestamps():
    rates = st.CpuRates()
    key = ("p1", "app")
    rates.update({key: _u(50.0, 1000)}, now_s=0)
    assert rates.update({key: _u(0.2, 2000)}, now_s=1) == {}  # counter reset: no negative rate
    assert rates.update({key: _u(0.6, 3000)}, now_s=2) == {"p1": pytest.approx(0.4)}
    untimed = st.CpuRates()
    untimed.update({key: _u(1.0, None)}, now_s=100.0)
    assert untimed.update({key: _u(1.5, None)}, now_s=102.0) == {"p1": pytest.approx(0.25)}


# --- HPA -----------------------------------------------------------------------------------------

HPA_OK = {
    "metadata": {"name": "ai-agent"},
    "status": {
        "currentReplicas": 3,
        "desiredReplicas": 5,
        "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 87, "averageValue": "218m"}}}],
        "conditions": [
            {"type": "AbleToScale", "status": "True", "reason": "SucceededRescale", "message": "the HPA controller was able to update the target scale to 5"},
            {"type": "ScalingActive", "status": "True", "reason": "ValidMetricFound", "message": "the HPA was able to successfully calculate a replica count from cpu resource utilization (percentage of request)"},
            {"type": "ScalingLimited", "status": "False", "reason": "DesiredWithinRange", "message": "the desired count is within the acceptable range"},
        ],
    },
}

HPA_NO_REQUEST = {
    "metadata": {"name": "ai-agent"},
    "status": {
        "currentReplicas": 1,
        "desiredReplicas": 0,
        "conditions": [
            {"type": "AbleToScale", "status": "True", "reason": "SucceededGetScale", "message": "the HPA controller was able to get the target's current scale"},
            {
                "type": "ScalingActive",
                "status": "False",
                "reason": "FailedGetResourceMetric",
                "message": "the HPA was unable to compute the replica count: failed to get cpu utilization: missing request for cpu in container ai-agent of Pod ai-agent-7c9d",
            },
        ],
    },
}


def test_hpa_status_fields():
    s = st.hpa_status(HPA_OK)
    assert (s.current_replicas, s.desired_replicas, s.util_pct, s.target_unknown) == (3, 5, 87, False)
    assert s.conditions["ScalingActive"][:2] == ("True", "ValidMetricFound")
    assert st.hpa_status({}).target_unknown and st.diagnose_hpa(HPA_OK) is None


def test_hpa_target_unknown_from_missing_cpu_requests_is_explained():
    recorded = _json("hpa-missing-cpu-request.json")  # a Deployment without resources.requests
    assert st.hpa_status(recorded).target_unknown
    err = st.diagnose_hpa(recorded)
    assert err is not None and "missing request for cpu in container ai-agent" in err.message
    err = st.diagnose_hpa(HPA_NO_REQUEST)
    assert err is not None and "<unknown>" in err.message and "resources.requests.cpu" in err.fix
    assert err.lab == "03-kind-cluster-and-hpa"


def test_hpa_waiting_for_first_metrics_is_not_an_error():
    pending = {"status": {"conditions": [{"type": "ScalingActive", "status": "False", "reason": "FailedGetResourceMetric",
                                          "message": "failed to get cpu utilization: did not receive metrics for targeted pods (pods might be unready)"}]}}
    assert st.diagnose_hpa(pending) is None


def test_condition_events_only_on_change():
    first = st.condition_events({}, st.hpa_status(HPA_NO_REQUEST).conditions)
    assert [e["detail"].split()[0] for e in first] == ["AbleToScale=True", "ScalingActive=False"]
    now = st.hpa_status(HPA_OK).conditions
    changed = st.condition_events(st.hpa_status(HPA_NO_REQUEST).conditions, now)
    assert {e["detail"].split()[0] for e in changed} == {"AbleToScale=True", "ScalingActive=True", "ScalingLimited=False"}
    assert st.condition_events(now, now) == []


# --- pods ----------------------------------------------------------------------------------------


def test_image_not_loaded_says_kind_load():
    (pod,) = _json("pods-errimagepull.json")["items"]  # recorded: an image the node does not have
    err = st.diagnose_pods([pod], image="scalelab-ai-agent:0.1.0", kind_cluster="scalelab")
    assert err is not None and "ErrImagePull" in err.message and "registry-1.docker.io" in err.message
    assert "no image scalelab-ai-agent:0.0.0-missing" in err.message, "names the image the pod asked for"
    assert "kind load docker-image scalelab-ai-agent:0.0.0-missing --name scalelab" in err.fix
    other = st.diagnose_pods([pod], image="scalelab-ai-agent:0.1.0", kind_cluster=None)
    assert "kind load" not in other.fix and "ctr" in other.fix


def test_unschedulable_and_crashloop_are_explained():
    unsched = {"metadata": {"name": "p"}, "status": {"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/1 nodes are available: 1 Insufficient cpu."}]}}
    err = st.diagnose_pods([unsched], image="i:1")
    assert "Insufficient cpu" in err.message and "--cpu-budget" in err.fix
    crash = {"metadata": {"name": "p", "namespace": "ns"}, "status": {"phase": "Running", "containerStatuses": [
        {"name": "ai-agent", "restartCount": 4, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}}
    err = st.diagnose_pods([crash], image="i:1")
    assert "4 restarts" in err.message and "logs p --previous" in err.fix


def test_healthy_and_starting_pods_are_not_errors():
    starting = {"metadata": {"name": "p"}, "spec": {"nodeName": "n1"}, "status": {"phase": "Pending", "containerStatuses": [
        {"name": "ai-agent", "state": {"waiting": {"reason": "ContainerCreating"}}}]}}
    assert st.diagnose_pods([starting], image="i:1") is None
    v = st.pod_view(starting)
    assert (v.name, v.node, v.phase, v.ready, v.deleting) == ("p", "n1", "Pending", False, False)


# --- events --------------------------------------------------------------------------------------


def _event(uid: str, reason: str, message: str, *, count: int = 1, type_: str = "Normal", ts: str = "2026-11-23T16:00:00Z") -> dict:
    return {"metadata": {"uid": uid}, "reason": reason, "message": message, "count": count, "type": type_, "lastTimestamp": ts,
            "involvedObject": {"kind": "HorizontalPodAutoscaler", "name": "ai-agent"}}


def test_event_log_reports_rescales_and_warnings_once():
    log = st.EventLog()
    evs = [
        _event("u1", "SuccessfulRescale", "New size: 4; reason: cpu resource utilization (percentage of request) above target"),
        _event("u2", "ScalingReplicaSet", "Scaled up replica set ai-agent-5f to 4"),
        _event("u3", "FailedGetResourceMetric", "failed to get cpu utilization: unable to get metrics", type_="Warning"),
    ]
    rows = log.new(evs)
    assert [(r["kind"], r["replicas"]) for r in rows] == [("hpa_rescale", 4), ("note", None)]
    assert log.new(evs) == []
    evs[0]["count"] = 2  # the same rescale again: a new decision
    evs[2]["count"] = 2  # the same warning again: already reported
    assert [r["kind"] for r in log.new(evs)] == ["hpa_rescale"]


# --- recorded from the real test cluster (Kubernetes v1.34.4, metrics-server v0.9.0) --------------

REC_NS = "scalelab-smoke-f94b26"


def test_recorded_kubelet_text_gives_per_pod_cpu_and_memory():
    u1 = st.container_usage(_text("kubelet-metrics-resource-1.txt"), REC_NS)
    u2 = st.container_usage(_text("kubelet-metrics-resource-2.txt"), REC_NS)
    key = ("ai-agent-98997b4cc-n94jb", "ai-agent")
    assert set(u1) == set(u2) == {key}, "only the run namespace, not kube-system"
    assert (u1[key].cpu_seconds, u1[key].cpu_timestamp_ms) == (0.688621921, 1795450757472)
    assert u1[key].memory_bytes > 10 * 2**20
    rates = st.CpuRates()
    rates.update(u1, now_s=0)
    pods = rates.update(u2, now_s=1)
    # (0.928263551 - 0.688621921) core-s over 1.191 s of kubelet time
    assert pods == {"ai-agent-98997b4cc-n94jb": pytest.approx(0.239641630 / 1.191)}
    assert rates.intervals_s == [pytest.approx(1.191)], "the kubelet refreshed within about a second"
    three = st.container_usage(_text("kubelet-metrics-resource-3.txt"), REC_NS)
    assert len(three) == 3 and all(u.cpu_seconds and u.memory_bytes for u in three.values())


def test_recorded_hpa_status_before_and_after_a_rescale():
    calm, busy = st.hpa_status(_json("hpa-active.json")), st.hpa_status(_json("hpa-scaling.json"))
    assert (calm.util_pct, calm.current_replicas, calm.desired_replicas) == (3, 1, 1)
    assert (busy.util_pct, busy.current_replicas, busy.desired_replicas) == (150, 3, 3)
    assert busy.conditions["ScalingActive"][:2] == ("True", "ValidMetricFound")
    assert st.diagnose_hpa(_json("hpa-scaling.json")) is None


def test_recorded_events_give_one_rescale_and_drop_dns_noise():
    rows = st.EventLog().new(_json("events-rescale.json")["items"])
    rescales = [r for r in rows if r["kind"] == "hpa_rescale"]
    assert [(r["replicas"], r["source"]) for r in rescales] == [(3, "hpa")]
    assert "above target" in rescales[0]["detail"]
    notes = [r["detail"].split(":")[0] for r in rows if r["kind"] == "note"]
    assert "FailedGetResourceMetric" in notes and "MissingClusterDNS" not in notes
    assert "Unhealthy" not in notes, "readiness probes during the cold start are not news"
    primed = st.EventLog()
    primed.prime(_json("events-rescale.json")["items"])
    assert primed.new(_json("events-rescale.json")["items"]) == []


def test_recorded_pods_are_healthy_and_placed():
    pods = _json("pods-scaling.json")["items"]
    assert st.diagnose_pods(pods, image="scalelab-ai-agent:0.1.0") is None
    views = [st.pod_view(p) for p in pods]
    assert {v.node for v in views} == {"scalelab-node"} and all(v.phase == "Running" for v in views)


# --- pod lifecycle events (KubernetesPlatform._pod_events; no cluster needed) --------------------


def _view(name: str, *, ready: bool = False, deleting: bool = False, node: str = "n1") -> st.PodView:
    return st.PodView(name=name, node=node, phase="Running", ready=ready, deleting=deleting, waiting=(), unschedulable="", restarts=0)


def test_pod_start_ready_and_stop_events_once_each():
    from scalelab.platforms.kubernetes import KubernetesPlatform
    from scalelab.scenario import load_scenario

    p = KubernetesPlatform(load_scenario("ci-spike", cpu_budget=1), "kubernetes-hpa", run_id="20261123-153000-ci-spike-kubernetes-hpa-1a2b",
                           kubeconfig="/nonexistent", context="x")
    assert p.namespace == "scalelab-153000-1a2b" and p._api is None  # nothing connects at construction
    kinds = lambda evs: [(e["kind"], e["detail"].split()[0]) for e in evs]  # noqa: E731
    assert kinds(p._pod_events([_view("a")])) == [("replica_start", "a")]
    assert kinds(p._pod_events([_view("a", ready=True), _view("b")])) == [("replica_ready", "a"), ("replica_start", "b")]
    assert kinds(p._pod_events([_view("a", ready=True), _view("b")])) == []
    assert kinds(p._pod_events([_view("a", ready=True, deleting=True), _view("b", ready=True)])) == [("replica_stop", "a"), ("replica_ready", "b")]
    assert kinds(p._pod_events([_view("b", ready=True)])) == []  # a already reported as stopping
    assert kinds(p._pod_events([])) == [("replica_stop", "b")]
