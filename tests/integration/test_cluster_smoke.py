"""Smoke test of a real cluster: the ai-agent Deployment scales out and back in with an HPA.

Deploys k8s/deployment.yaml, service.yaml and hpa.yaml (patched in memory: namespace, image,
resources, a cluster-assigned NodePort, a short scale-down window) into a fresh namespace,
drives bounded load at the NodePort on 127.0.0.1, and reads the HPA status and metrics.k8s.io through the `kubernetes` client.
Run against the test cluster: `bash tests/cluster/cluster.sh up` first.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import pytest

from scalelab.platforms import k8s_manifests as km

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
IMAGE = os.environ.get("SCALELAB_TEST_IMAGE", "scalelab-ai-agent:0.1.0")
LOCALHOST = "127.0.0.1"  # the only address the test sends traffic to (the Service's NodePort)
SCALE_DOWN_WINDOW_S = 20
LOAD_THREADS = 8
LOAD_MAX_S = 180  # load stops by itself after this, whatever happens
LOAD_MAX_REQUESTS_PER_THREAD = 20_000
SCALE_UP_TARGET = 3
LOAD_SETTLE_S = 30  # once >= SCALE_UP_TARGET, keep loading until the count held this long
SCALE_DOWN_TARGET = 2
SCALE_DOWN_TIMEOUT_S = 240
POLL_S = 2.0


# --- manifests --------------------------------------------------------------------------------


def _manifest(name: str, namespace: str) -> dict:
    import yaml

    doc = yaml.safe_load((REPO / "k8s" / name).read_text())
    doc["metadata"]["namespace"] = namespace
    if doc["kind"] == "Deployment":
        container = doc["spec"]["template"]["spec"]["containers"][0]
        container["image"] = IMAGE
        container["resources"] = {
            "requests": {"cpu": "100m", "memory": "64Mi"},
            "limits": {"cpu": "200m", "memory": "256Mi"},
        }
    if doc["kind"] == "Service":
        # Let the cluster pick the NodePort, so a concurrent run (or a lab) holding 30080 does
        # not collide with this test.
        for port in doc["spec"]["ports"]:
            port.pop("nodePort", None)
    if doc["kind"] == "HorizontalPodAutoscaler":
        doc["spec"]["minReplicas"] = 1  # k8s/hpa.yaml holds the run's 2; this test starts from 1
        doc["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] = SCALE_DOWN_WINDOW_S
    return doc


def _apply(dyn, doc: dict) -> None:
    """Server-side apply (create or update), as `kubectl apply --server-side` does."""
    resource = dyn.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
    dyn.server_side_apply(
        resource,
        body=doc,
        namespace=doc["metadata"].get("namespace"),
        field_manager="scalelab-test",
        force_conflicts=True,
    )


# --- observations -----------------------------------------------------------------------------


@dataclass
class Sample:
    t_s: float
    current: int
    desired: int
    utilization: int | None
    pods_cpu: Decimal | None  # cores, summed over the namespace's pods (metrics.k8s.io)


@dataclass
class Timeline:
    t0: float = field(default_factory=time.monotonic)
    samples: list[Sample] = field(default_factory=list)

    def first(self, predicate) -> Sample | None:
        return next((s for s in self.samples if predicate(s)), None)

    def render(self) -> str:
        lines = ["  t_s  replicas desired  cpu%  pods_cpu"]
        for s in self.samples:
            util = "-" if s.utilization is None else str(s.utilization)
            cpu = "-" if s.pods_cpu is None else f"{s.pods_cpu:.3f}"
            lines.append(f"{s.t_s:5.0f}  {s.current:8d} {s.desired:7d} {util:>5}  {cpu:>8}")
        return "\n".join(lines)


def _hpa_status(api_client, namespace: str):
    from kubernetes import client

    return (
        client.AutoscalingV2Api(api_client)
        .read_namespaced_horizontal_pod_autoscaler_status("ai-agent", namespace, _request_timeout=10)
        .status
    )


def _cpu_utilization(status) -> int | None:
    for metric in status.current_metrics or []:
        if metric.type == "Resource" and metric.resource and metric.resource.name == "cpu":
            return metric.resource.current.average_utilization
    return None


def _pods_cpu(api_client, namespace: str) -> Decimal | None:
    from kubernetes import utils

    items = utils.get_pods_metrics(api_client, namespace, "app.kubernetes.io/name=ai-agent").get("items", [])
    if not items:
        return None
    return sum((utils.parse_quantity(c["usage"]["cpu"]) for pod in items for c in pod["containers"]), Decimal(0))


def _sample(api_client, namespace: str, t0: float) -> Sample:
    status = _hpa_status(api_client, namespace)
    try:
        pods_cpu = _pods_cpu(api_client, namespace)
    except Exception:  # noqa: BLE001 -- metrics.k8s.io briefly unavailable: record a gap, keep sampling
        pods_cpu = None
    return Sample(
        t_s=time.monotonic() - t0,
        current=status.current_replicas or 0,
        desired=status.desired_replicas or 0,
        utilization=_cpu_utilization(status),
        pods_cpu=pods_cpu,
    )


def _wait(what: str, timeout_s: float, check) -> None:
    deadline = time.monotonic() + timeout_s
    last_error = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as exc:  # noqa: BLE001 -- keep polling; report the last error on timeout
            last_error = exc
        time.sleep(POLL_S)
    pytest.fail(f"timed out after {timeout_s:.0f}s waiting for {what} (last error: {last_error})", pytrace=False)


def _deployment_ready(api_client, namespace: str) -> bool:
    from kubernetes import client

    for pod in client.CoreV1Api(api_client).list_namespaced_pod(namespace).items:
        for cs in (pod.status.container_statuses or []) if pod.status else []:
            waiting = cs.state.waiting if cs.state else None
            if waiting and waiting.reason in ("ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull"):
                pytest.fail(
                    f"image {IMAGE} is not in the cluster ({waiting.reason}); build it and run "
                    f"`bash tests/cluster/cluster.sh load {IMAGE}`",
                    pytrace=False,
                )
    dep = client.AppsV1Api(api_client).read_namespaced_deployment("ai-agent", namespace)
    return (dep.status.available_replicas or 0) >= 1


def _node_port_url(api_client, namespace: str) -> str:
    from kubernetes import client

    service = client.CoreV1Api(api_client).read_namespaced_service("ai-agent", namespace)
    return f"http://{LOCALHOST}:{service.spec.ports[0].node_port}"


def _service_answers(base_url: str) -> bool:
    import requests

    with requests.Session() as session:
        session.trust_env = False  # never through a proxy
        return session.get(f"{base_url}/healthz", timeout=3).status_code == 200


# --- load -------------------------------------------------------------------------------------


@dataclass
class LoadResult:
    ok: int = 0
    failed: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _load_worker(base_url: str, stop: threading.Event, deadline: float, result: LoadResult) -> None:
    import requests

    with requests.Session() as session:
        session.trust_env = False
        for _ in range(LOAD_MAX_REQUESTS_PER_THREAD):
            if stop.is_set() or time.monotonic() >= deadline:
                return
            try:
                ok = session.post(f"{base_url}/chat", json={"message": "scale me"}, timeout=5).status_code == 200
            except requests.RequestException:
                ok = False
            with result.lock:
                if ok:
                    result.ok += 1
                else:
                    result.failed += 1
            if not ok:
                stop.wait(0.2)


# --- diagnostics --------------------------------------------------------------------------------


def _diagnostics(api_client, namespace: str, logs_dir: Path) -> str:
    from kubernetes import client

    out = []
    try:
        core = client.CoreV1Api(api_client)
        for pod in core.list_namespaced_pod(namespace).items:
            out.append(f"pod {pod.metadata.name}: {pod.status.phase}")
        for ev in core.list_namespaced_event(namespace).items[-30:]:
            out.append(f"event {ev.involved_object.kind}/{ev.involved_object.name}: {ev.reason}: {ev.message}")
        status = _hpa_status(api_client, namespace)
        for cond in status.conditions or []:
            out.append(f"hpa condition {cond.type}={cond.status} {cond.reason}: {cond.message}")
    except Exception as exc:  # noqa: BLE001 -- diagnostics must never mask the real failure
        out.append(f"(could not read cluster state: {exc})")
    for log in sorted(logs_dir.glob("*.log")):
        tail = log.read_text(errors="replace").splitlines()[-15:]
        out.append(f"===== {log}\n" + "\n".join(tail))
    return "\n".join(out)


# --- the test -----------------------------------------------------------------------------------


def test_hpa_scales_ai_agent_out_and_in(test_cluster, capsys):
    from kubernetes import client, dynamic

    namespace = f"scalelab-smoke-{uuid.uuid4().hex[:6]}"
    api_client = test_cluster.api_client()
    core = client.CoreV1Api(api_client)
    # Labelled like the kit's run namespaces: the raw k8s/ manifests must pass the restricted profile.
    labels = {"app.kubernetes.io/part-of": "scalelab-test", **km.POD_SECURITY_LABELS}
    core.create_namespace({"metadata": {"name": namespace, "labels": labels}})
    timeline = Timeline()
    load = LoadResult()
    stop = threading.Event()
    try:
        dyn = dynamic.DynamicClient(api_client)
        for name in ("deployment.yaml", "service.yaml", "hpa.yaml"):
            _apply(dyn, _manifest(name, namespace))
        _wait("the ai-agent Deployment to be available", 180, lambda: _deployment_ready(api_client, namespace))
        base_url = _node_port_url(api_client, namespace)
        _wait(f"{base_url}/healthz to answer", 60, lambda: _service_answers(base_url))
        _wait(
            "the HPA to read CPU utilization (metrics.k8s.io pipeline)",
            180,
            lambda: _cpu_utilization(_hpa_status(api_client, namespace)) is not None,
        )
        _wait("pod metrics in metrics.k8s.io", 60, lambda: _pods_cpu(api_client, namespace) is not None)
        baseline = _sample(api_client, namespace, time.monotonic())
        assert baseline.current == 1, f"expected 1 replica before load, got {baseline.current}"

        # Bounded load: LOAD_THREADS threads, each stops at the deadline, on `stop`, or after
        # LOAD_MAX_REQUESTS_PER_THREAD requests.
        timeline.t0 = time.monotonic()
        deadline = timeline.t0 + LOAD_MAX_S
        threads = [
            threading.Thread(target=_load_worker, args=(base_url, stop, deadline, load), daemon=True)
            for _ in range(LOAD_THREADS)
        ]
        for thread in threads:
            thread.start()
        max_replicas = _manifest("hpa.yaml", namespace)["spec"]["maxReplicas"]
        last_change_s = 0.0
        while time.monotonic() < deadline:
            s = _sample(api_client, namespace, timeline.t0)
            timeline.samples.append(s)
            if len(timeline.samples) > 1 and s.current != timeline.samples[-2].current:
                last_change_s = s.t_s
            settled = s.current == s.desired and s.t_s - last_change_s >= LOAD_SETTLE_S
            if s.current >= SCALE_UP_TARGET and (s.current >= max_replicas or settled):
                break
            time.sleep(POLL_S)
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
        load_stopped_s = time.monotonic() - timeline.t0
        loaded = list(timeline.samples)

        # After the load: back down within a bounded wait.
        down_deadline = time.monotonic() + SCALE_DOWN_TIMEOUT_S
        while time.monotonic() < down_deadline:
            s = _sample(api_client, namespace, timeline.t0)
            timeline.samples.append(s)
            if s.current <= 1:
                break
            time.sleep(POLL_S)

        first_up = timeline.first(lambda s: s.desired > 1)
        peak = max(s.current for s in loaded)
        at_peak = timeline.first(lambda s: s.current == peak)
        down = timeline.first(lambda s: s.t_s > load_stopped_s and s.current <= SCALE_DOWN_TARGET)
        at_min = timeline.first(lambda s: s.t_s > load_stopped_s and s.current <= 1)
        peak_util = max((s.utilization or 0) for s in loaded)
        peak_cpu = max((s.pods_cpu or Decimal(0)) for s in loaded)

        def fmt(s: Sample | None) -> str:
            return "never" if s is None else f"{s.t_s:.0f}s"

        def after_stop(s: Sample | None) -> str:
            return "never" if s is None else f"{s.t_s - load_stopped_s:.0f}s after load stop"

        summary = (
            f"\nHPA timeline (image {IMAGE}, {LOAD_THREADS} threads, requests ok/failed {load.ok}/{load.failed}):\n"
            f"{timeline.render()}\n"
            f"first scale-up decision: {fmt(first_up)}; peak {peak} replicas at {fmt(at_peak)}; "
            f"load stopped at {load_stopped_s:.0f}s; <= {SCALE_DOWN_TARGET} replicas {after_stop(down)}; "
            f"1 replica {after_stop(at_min)}\n"
            f"baseline: cpu {baseline.utilization}% pods_cpu {baseline.pods_cpu}; "
            f"under load: peak cpu {peak_util}% pods_cpu {peak_cpu:.3f} cores"
        )
        with capsys.disabled():
            print(summary)

        assert load.ok > 0, "no request succeeded"
        assert peak >= SCALE_UP_TARGET, f"HPA did not scale to >= {SCALE_UP_TARGET} replicas (peak {peak})"
        assert peak_util > 50, f"HPA never saw CPU above its 50% target (peak {peak_util}%)"
        assert peak_cpu > (baseline.pods_cpu or Decimal(0)) + Decimal("0.1"), (
            f"metrics.k8s.io pod CPU did not rise under load ({baseline.pods_cpu} -> {peak_cpu})"
        )
        assert down is not None, (
            f"HPA did not scale back to <= {SCALE_DOWN_TARGET} replicas within {SCALE_DOWN_TIMEOUT_S}s after the load"
        )
    except BaseException:
        stop.set()
        with capsys.disabled():
            print(
                f"\n--- diagnostics for namespace {namespace}\n{_diagnostics(api_client, namespace, test_cluster.logs_dir)}"
            )
        raise
    finally:
        stop.set()
        try:
            # The Service first: it frees its NodePort at once.
            for delete in (
                lambda: core.delete_namespaced_service("ai-agent", namespace, _request_timeout=30),
                lambda: core.delete_namespace(namespace, _request_timeout=30),
            ):
                try:
                    delete()
                except client.ApiException as exc:
                    if exc.status != 404:
                        raise
        finally:
            api_client.close()
