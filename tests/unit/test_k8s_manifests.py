"""Every manifest under k8s/ parses and holds together; the rendered run manifests match the scenario."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from scalelab.platforms import k8s_manifests as km
from scalelab.scenario import FixedScaler, load_scenario

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"

API_VERSIONS = {
    "Deployment": "apps/v1",
    "Service": "v1",
    "HorizontalPodAutoscaler": "autoscaling/v2",
    "ServiceAccount": "v1",
    "ClusterRole": "rbac.authorization.k8s.io/v1",
    "ClusterRoleBinding": "rbac.authorization.k8s.io/v1",
    "RoleBinding": "rbac.authorization.k8s.io/v1",
    "APIService": "apiregistration.k8s.io/v1",
    "Cluster": "kind.x-k8s.io/v1alpha4",
}


def _docs(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]


def _all_docs() -> list[tuple[str, dict]]:
    return [(p.name, d) for p in sorted(K8S.glob("*.yaml")) for d in _docs(p.name)]


def _pod_specs(doc: dict) -> list[dict]:
    if doc.get("kind") in ("Deployment", "StatefulSet", "DaemonSet"):
        return [doc["spec"]["template"]["spec"]]
    return []


def test_every_manifest_has_a_known_kind_and_api_version():
    docs = _all_docs()
    assert {"deployment.yaml", "service.yaml", "hpa.yaml", "kind-cluster.yaml", "metrics-server.yaml"} <= {f for f, _ in docs}
    for fname, doc in docs:
        assert doc["kind"] in API_VERSIONS, f"{fname}: unexpected kind {doc['kind']}"
        assert doc["apiVersion"] == API_VERSIONS[doc["kind"]], f"{fname}: {doc['kind']} apiVersion {doc['apiVersion']}"


def test_every_container_has_requests_limits_and_a_pinned_image():
    for fname, doc in _all_docs():
        for spec in _pod_specs(doc):
            for c in spec["containers"]:
                req = c.get("resources", {}).get("requests", {})
                assert "cpu" in req and "memory" in req, f"{fname}: container {c['name']} lacks CPU/memory requests"
                image = c["image"]
                assert ":" in image.split("/")[-1] and not image.endswith(":latest"), f"{fname}: image {image} must carry a version tag"
                assert c.get("imagePullPolicy") in ("IfNotPresent", "Never"), f"{fname}: {c['name']} could pull"


def test_agent_deployment_probes_labels_and_selector():
    (dep,) = _docs("deployment.yaml")
    assert "namespace" not in dep["metadata"]
    selector = dep["spec"]["selector"]["matchLabels"]
    assert selector == km.APP_LABEL
    assert selector.items() <= dep["spec"]["template"]["metadata"]["labels"].items()
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["image"] == km.AGENT_IMAGE
    (svc,) = _docs("service.yaml")
    assert svc["spec"]["selector"] == selector
    port_names = {p["name"] for p in c["ports"]}
    assert all(p["targetPort"] in port_names for p in svc["spec"]["ports"])
    (hpa,) = _docs("hpa.yaml")
    ref = hpa["spec"]["scaleTargetRef"]
    assert (ref["kind"], ref["name"]) == ("Deployment", dep["metadata"]["name"])


def test_node_port_is_published_by_kind_on_loopback():
    (svc,) = _docs("service.yaml")
    (cluster,) = _docs("kind-cluster.yaml")
    node_port = svc["spec"]["ports"][0]["nodePort"]
    mappings = [m for n in cluster["nodes"] for m in n.get("extraPortMappings", [])]
    assert any(m["containerPort"] == node_port and m["hostPort"] == node_port for m in mappings)
    assert all(m["listenAddress"] == "127.0.0.1" for m in mappings)


def test_kind_cluster_classroom_profile_is_portable():
    (cluster,) = _docs("kind-cluster.yaml")
    assert cluster["name"] == "scalelab"
    roles = [n["role"] for n in cluster["nodes"]]
    assert roles == ["control-plane", "worker", "worker"]
    assert "image" not in str(cluster), "the node image comes from versions.py, not the file"
    (patch_text,) = cluster["nodes"][0]["kubeadmConfigPatches"]
    patch = yaml.safe_load(patch_text)
    assert "apiVersion" not in patch, "a versioned patch silently misses other kubeadm API versions"
    args = patch["controllerManager"]["extraArgs"]
    assert isinstance(args, dict), "map form, not the v1beta4 list form"
    assert args == {"horizontal-pod-autoscaler-sync-period": "5s", "horizontal-pod-autoscaler-downscale-stabilization": "30s",
                    "node-monitor-grace-period": "30s"}
    # the classroom scenario says the same
    hpa = load_scenario("classroom-spike", cpu_budget=4).arms["kubernetes-hpa"].scaler
    assert (hpa.sync_period_s, hpa.downscale_stabilization_s) == (5.0, 30.0)


def test_metrics_server_can_scrape_kind_kubelets():
    deps = [d for d in _docs("metrics-server.yaml") if d["kind"] == "Deployment"]
    assert len(deps) == 1
    args = deps[0]["spec"]["template"]["spec"]["containers"][0].get("args", [])
    assert "--kubelet-insecure-tls" in args
    api = [d for d in _docs("metrics-server.yaml") if d["kind"] == "APIService"]
    assert api and api[0]["metadata"]["name"] == "v1beta1.metrics.k8s.io"


# --- rendering -------------------------------------------------------------------------------

RUN_ID = "20261123-153000-classroom-spike-kubernetes-hpa-1a2b"


@pytest.mark.parametrize("name", ["classroom-spike", "ci-spike"])
@pytest.mark.parametrize("budget", [1.0, 4.0])
def test_render_follows_the_sized_scenario(name: str, budget: float):
    s = load_scenario(name, cpu_budget=budget)
    m = km.render(s, "kubernetes-hpa", RUN_ID, k8s_dir=K8S)
    arm = s.arms["kubernetes-hpa"]
    assert m.ns == "scalelab-153000-1a2b"
    for doc in m.documents():
        labels = doc["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "scalelab"
        assert labels[km.RUN_ID_LABEL] == RUN_ID
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == m.ns
    dep = m.deployment
    assert dep["spec"]["replicas"] == arm.replicas
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    assert c["resources"]["requests"]["cpu"] == f"{math.ceil(s.workload.cpu_request * 1000)}m"
    assert c["resources"]["limits"]["cpu"] == f"{math.ceil(s.workload.cpu_limit * 1000)}m"
    assert c["resources"]["limits"]["memory"] == f"{s.workload.memory_mb}Mi"
    env = {e["name"]: e["value"] for e in c["env"]}
    assert float(env["AGENT_WORK_MS"]) == s.workload.work_ms and float(env["AGENT_WARMUP_S"]) == s.workload.warmup_s
    assert len(c["env"]) == len(env), "no duplicate env entries"
    # the selector is untouched, the template carries the run id
    assert dep["spec"]["selector"]["matchLabels"] == km.APP_LABEL
    assert dep["spec"]["template"]["metadata"]["labels"][km.RUN_ID_LABEL] == RUN_ID
    hpa = m.hpa["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (arm.scaler.min_replicas, arm.scaler.max_replicas)
    assert hpa["metrics"][0]["resource"]["target"]["averageUtilization"] == arm.scaler.target_cpu_pct
    b = arm.scaler.behavior
    up, down = hpa["behavior"]["scaleUp"], hpa["behavior"]["scaleDown"]
    assert up["stabilizationWindowSeconds"] == b.scale_up.stabilization_window_s
    assert down["stabilizationWindowSeconds"] == b.scale_down.stabilization_window_s
    assert [(p["type"], p["value"], p["periodSeconds"]) for p in up["policies"]] == [(p.type, p.value, p.period_s) for p in b.scale_up.policies]
    assert [(p["type"], p["value"], p["periodSeconds"]) for p in down["policies"]] == [(p.type, p.value, p.period_s) for p in b.scale_down.policies]
    assert m.node_port == 30080


def test_render_does_not_touch_the_files_or_share_state():
    before = (K8S / "deployment.yaml").read_text()
    s = load_scenario("classroom-spike", cpu_budget=1)
    a = km.render(s, "kubernetes-hpa", RUN_ID, replicas=7, k8s_dir=K8S)
    b = km.render(s, "kubernetes-hpa", "20261123-160000-x-y-ffff", k8s_dir=K8S)
    assert a.deployment["spec"]["replicas"] == 7 and b.deployment["spec"]["replicas"] == 3
    assert a.ns != b.ns
    assert (K8S / "deployment.yaml").read_text() == before


def test_fixed_scaler_gets_no_hpa_and_no_behavior_means_legacy_path():
    s = load_scenario("classroom-spike", cpu_budget=2)
    arm = s.arms["kubernetes-hpa"]
    fixed = s.model_copy(update={"arms": {"k8s-fixed": arm.model_copy(update={"scaler": FixedScaler(type="fixed")})}})
    assert km.render(fixed, "k8s-fixed", RUN_ID, k8s_dir=K8S).hpa is None
    legacy = s.model_copy(update={"arms": {"legacy": arm.model_copy(update={"scaler": arm.scaler.model_copy(update={"behavior": None})})}})
    assert "behavior" not in km.render(legacy, "legacy", RUN_ID, k8s_dir=K8S).hpa["spec"]


def test_rendered_objects_validate_against_the_client_models():
    from kubernetes import client

    s = load_scenario("classroom-spike", cpu_budget=1)
    m = km.render(s, "kubernetes-hpa", RUN_ID, k8s_dir=K8S)
    dep = client.V1Deployment.from_dict(m.deployment)
    assert dep.spec.template.spec.containers[0].resources.requests["cpu"] == km.cpu_quantity(s.workload.cpu_request)
    hpa = client.V2HorizontalPodAutoscaler.from_dict(m.hpa)
    assert hpa.spec.behavior.scale_up.policies[0].period_seconds == 5
    client.V1Service.from_dict(m.service)
    client.V1Namespace.from_dict(m.namespace)


def test_names_and_quantities():
    assert km.namespace_for(RUN_ID) == "scalelab-153000-1a2b"
    assert km.namespace_for("Odd_ID").startswith("scalelab-")
    assert len(km.label_value("x" * 100)) == 63
    assert km.label_value("a/b:c-") == "a-b-c"
    assert km.cpu_quantity(0.125) == "125m" and km.cpu_quantity(0.0625) == "63m" and km.cpu_quantity(0.3) == "300m" and km.cpu_quantity(0.0001) == "1m" and km.cpu_quantity(2) == "2000m"
    assert km.behavior_spec(None) is None


def test_unreadable_or_ambiguous_manifest_is_a_preflight_error(tmp_path):
    from scalelab.errors import PreflightError

    with pytest.raises(PreflightError, match="cannot read"):
        km._one(tmp_path / "nope.yaml", "Deployment")
    (tmp_path / "two.yaml").write_text("kind: Deployment\n---\nkind: Deployment\n")
    with pytest.raises(PreflightError, match="exactly one Deployment, found 2"):
        km._one(tmp_path / "two.yaml", "Deployment")


def test_the_students_hpa_yaml_is_the_one_the_classroom_run_uses():
    """k8s/hpa.yaml (what lab 03 applies by hand) has the bounds, target and behaviour of the recorded run."""
    (hpa,) = _docs("hpa.yaml")
    rendered = km.render(load_scenario("classroom-spike"), "kubernetes-hpa", "20261204-232857-classroom-spike-kubernetes-hpa-910e").hpa
    assert rendered is not None
    for key in ("minReplicas", "maxReplicas", "metrics", "behavior"):
        assert hpa["spec"][key] == rendered["spec"][key], key
    run = ROOT / "tests" / "fixtures" / "runs" / "20261204-232857-classroom-spike-kubernetes-hpa-910e" / "scenario.yaml"
    recorded = yaml.safe_load(run.read_text())["arms"]["kubernetes-hpa"]["scaler"]
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (recorded["min_replicas"], recorded["max_replicas"])


def test_rendered_manifests_are_saved_as_applied(tmp_path: Path):
    m = km.render(load_scenario("classroom-spike"), "kubernetes-hpa", "20261204-232857-classroom-spike-kubernetes-hpa-910e")
    path = km.write_rendered(m, tmp_path)
    assert path == tmp_path / km.RENDERED_FILE
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    assert docs == m.documents()
    assert [d["kind"] for d in docs] == ["Namespace", "Deployment", "Service", "HorizontalPodAutoscaler"]
