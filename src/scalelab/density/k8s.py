"""`scalelab density pods`: pods per node against ``maxPods``, and pod start latency against the 5 s objective.

In a namespace of its own (created here, deleted in ``finally``), pinned to one node with a
``nodeSelector`` so the scheduler — not us — decides: pods beyond the node's free pod slots stay
Pending with ``0/1 nodes are available: 1 Too many pods.``. The pods run a pause-like image that
is already in the node's runtime (``imagePullPolicy: Never``: no registry), non-root, read-only,
with tiny requests and limits. The kubelet's flags are never changed. Latency = our create call
-> the Ready condition seen on a watch (client clock), like the upstream start-up measurement.
"""

from __future__ import annotations

import secrets
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scalelab.density import containers, host
from scalelab.density.ramp import Stopped, percentile
from scalelab.density.record import Recorder, new_density_run_id
from scalelab.errors import PlatformError, PreflightError

__all__ = ["PodsResult", "pick_node", "pod_manifest", "run_pods", "render_result"]

Say = Callable[[str], None]
LAB = "12-density"
TERMINAL = ("Succeeded", "Failed")


@dataclass
class PodsResult:
    run_dir: Path
    observed: dict[str, Any] = field(default_factory=dict)


def pick_node(nodes: list[dict[str, Any]]) -> dict[str, Any]:
    """The first Ready node that takes ordinary pods (no NoSchedule/NoExecute taint)."""
    for node in nodes:
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in node.get("status", {}).get("conditions", []))
        tainted = any(t.get("effect") in ("NoSchedule", "NoExecute") for t in node.get("spec", {}).get("taints") or [])
        if ready and not tainted and not node.get("spec", {}).get("unschedulable"):
            return node
    raise PreflightError("no Ready, untainted node to fill", fix="check `kubectl get nodes`; the test cluster: `bash tests/cluster/cluster.sh up`",
                         lab=LAB)


def pause_image(node: dict[str, Any]) -> str | None:
    """A pause image the node's runtime already holds (its sandbox image), from ``status.images``."""
    for image in node.get("status", {}).get("images") or []:
        for name in image.get("names") or []:
            if "/pause:" in name and "@" not in name:
                return str(name)
    return None


def pod_manifest(name: str, run_id: str, node: str, image: str) -> dict[str, Any]:
    """A pause pod: non-root, read-only, no token, tiny requests; pinned to ``node`` by the scheduler."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {containers.LABEL: run_id}},
        "spec": {
            "nodeSelector": {"kubernetes.io/hostname": node},
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": 0,
            "securityContext": {"runAsNonRoot": True, "runAsUser": 65535, "runAsGroup": 65535},
            "containers": [{
                "name": "pause",
                "image": image,
                "imagePullPolicy": "Never",
                "resources": {"requests": {"cpu": "1m", "memory": "4Mi"}, "limits": {"cpu": "10m", "memory": "16Mi"}},
                "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}},
            }],
        },
    }


class _Watcher(threading.Thread):
    """Follows our namespace's pods; notes when each is first Ready, or why it is Pending."""

    def __init__(self, core: Any, namespace: str) -> None:
        super().__init__(name="density-pods-watch", daemon=True)
        self.core, self.namespace = core, namespace
        self.ready_at: dict[str, float] = {}
        self.unschedulable: dict[str, str] = {}
        self.failed: dict[str, str] = {}
        self._stop = threading.Event()
        self._watch: Any = None

    def run(self) -> None:
        from kubernetes import watch

        while not self._stop.is_set():
            self._watch = watch.Watch()
            try:
                for ev in self._watch.stream(self.core.list_namespaced_pod, namespace=self.namespace, timeout_seconds=30):
                    self._seen(ev.get("raw_object") or {})
                    if self._stop.is_set():
                        break
            except Exception:  # noqa: BLE001 - the namespace is going away or the stream broke: resume or end
                time.sleep(0.2)

    def _seen(self, pod: dict[str, Any]) -> None:
        name = pod.get("metadata", {}).get("name", "")
        status = pod.get("status", {})
        for cond in status.get("conditions") or []:
            if cond.get("type") == "Ready" and cond.get("status") == "True" and name not in self.ready_at:
                self.ready_at[name] = time.monotonic()
            if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
                self.unschedulable[name] = str(cond.get("message") or cond.get("reason") or "")
        if status.get("phase") in TERMINAL:
            self.failed[name] = str(status.get("reason") or status.get("phase"))
        for cs in status.get("containerStatuses") or []:
            waiting = (cs.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in ("ErrImageNeverPull", "CreateContainerError", "CrashLoopBackOff", "CreateContainerConfigError"):
                self.failed[name] = f"{waiting.get('reason')}: {waiting.get('message', '')}"

    def stop(self) -> None:
        self._stop.set()
        if self._watch is not None:
            self._watch.stop()


def _model(cls: Any, data: dict[str, Any]) -> Any:
    """A typed client model from a manifest dict (kubernetes 37 validates it)."""
    obj = cls.from_dict(data)
    if obj is None:
        raise PlatformError(f"cannot build a {cls.__name__} from {data}", lab=LAB)
    return obj


def _raw(method: Any, *args: Any, **kwargs: Any) -> Any:
    from scalelab.platforms.k8s_client import raw

    return raw(method, *args, timeout_s=30, **kwargs)


def _delete_namespace(core: Any, name: str, timeout_s: float) -> float:
    from kubernetes.client.exceptions import ApiException

    t = time.monotonic()
    try:
        core.delete_namespace(name, grace_period_seconds=0, _request_timeout=30)
    except ApiException as exc:
        if exc.status != 404:
            raise
        return 0.0
    while time.monotonic() - t < timeout_s:
        try:
            core.read_namespace(name, _request_timeout=10)
        except ApiException as exc:
            if exc.status == 404:
                return time.monotonic() - t
        time.sleep(1.0)
    raise PlatformError(f"namespace {name} still exists after {timeout_s:.0f} s", fix=f"kubectl delete namespace {name}", lab=LAB)


def _remove_stale_namespaces(core: Any, say: Say) -> None:
    for ns in _raw(core.list_namespace, label_selector=containers.LABEL).get("items", []):
        labels = ns.get("metadata", {}).get("labels") or {}
        if not containers.owner_alive(labels) and ns.get("status", {}).get("phase") != "Terminating":
            say(f"removing namespace {ns['metadata']['name']} left by an earlier density run")
            _delete_namespace(core, ns["metadata"]["name"], 120)


def _pods_on(core: Any, node: str) -> int:
    pods = _raw(core.list_pod_for_all_namespaces, field_selector=f"spec.nodeName={node}").get("items", [])
    return sum(1 for p in pods if p.get("status", {}).get("phase") not in TERMINAL)


def run_pods(runs_dir: Path, *, kubeconfig: str | None = None, context: str | None = None, extra: int = 10, batch: int = 20,
             budget_s: float = 300.0, image: str | None = None, batch_timeout_s: float = 90.0, say: Say = print) -> PodsResult:
    """Fill one node past its free pod slots in batches; record latency per batch; delete the namespace."""
    from kubernetes import client

    from scalelab.platforms import k8s_client

    target = k8s_client.resolve_target(kubeconfig, context)
    api = k8s_client.new_api_client(target)
    version = k8s_client.check_reachable(api, target)
    core = client.CoreV1Api(api)
    _remove_stale_namespaces(core, say)
    node = pick_node(_raw(core.list_node).get("items", []))
    node_name = node["metadata"]["name"]
    max_pods = int(node["status"]["allocatable"]["pods"])
    image = image or pause_image(node)
    if not image:
        raise PreflightError(f"node {node_name} holds no pause image (status.images)", fix="pass --image with an image the node already has", lab=LAB)
    before = _pods_on(core, node_name)
    free = max(0, max_pods - before)
    requested = free + extra
    run_id = new_density_run_id("pods")
    namespace = f"scalelab-density-{secrets.token_hex(3)}"
    info = node["status"].get("nodeInfo", {})
    node_info = {"name": node_name, "max_pods": max_pods, "pods_before": before, "free_slots": free,
                 "kubelet": info.get("kubeletVersion"), "runtime": info.get("containerRuntimeVersion")}
    rec = Recorder(runs_dir, run_id, platform="kubernetes", mode="pods", extra={
        "namespace": namespace, "image": image, "kubernetes": version, "node": node_info,
        "config": {"extra": extra, "batch": batch, "budget_s": budget_s, "batch_timeout_s": batch_timeout_s},
        "prediction": {"first_wall": "maxPods (kubelet)", "fits": free, "error": "0/1 nodes are available: 1 Too many pods."},
    })
    say(f"run {run_id}: node {node_name} maxPods {max_pods}, {before} pods there -> room for {free}; asking for {requested} "
        f"in batches of {batch} (namespace {namespace}, image {image})")
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def on_signal(signum: int, _frame: Any) -> None:
        raise Stopped(signal.Signals(signum).name)

    status, observed = "failed", {"requested": requested, "stop": "error"}
    created: dict[str, float] = {}
    watcher = _Watcher(core, namespace)
    t0 = time.monotonic()
    for sig in previous:
        signal.signal(sig, on_signal)
    try:
        core.create_namespace(_model(client.V1Namespace, {"metadata": {"name": namespace, "labels": containers.labels(run_id)}}),
                              _request_timeout=30)
        watcher.start()
        number = 0
        while len(created) < requested:
            number += 1
            names = [f"pause-{i:04d}" for i in range(len(created), min(requested, len(created) + batch))]
            t_batch = time.monotonic()
            for name in names:
                created[name] = time.monotonic()
                core.create_namespaced_pod(namespace, _model(client.V1Pod, pod_manifest(name, run_id, node_name, image)), _request_timeout=30)
            deadline = time.monotonic() + batch_timeout_s
            while time.monotonic() < deadline and not all(n in watcher.ready_at or n in watcher.unschedulable or n in watcher.failed for n in names):
                time.sleep(0.2)
            batch_s = time.monotonic() - t_batch
            lat = [1000 * (watcher.ready_at[n] - created[n]) for n in names if n in watcher.ready_at]
            pending = [n for n in created if n not in watcher.ready_at]
            reason = next((watcher.unschedulable[n] for n in names if n in watcher.unschedulable), "")
            failed = next((f"{n}: {watcher.failed[n]}" for n in names if n in watcher.failed), "")
            load1, tasks = host.loadavg()
            elapsed = time.monotonic() - t0
            stop = ("error" if failed else "max pods" if reason and len(created) >= requested else
                    "budget" if elapsed + batch_s > budget_s and len(created) < requested else "")
            row = {"t_s": round(elapsed, 3), "batch": number, "n_requested": len(created), "n_running": len(watcher.ready_at),
                   "started": len(lat), "failed": 1 if failed else 0, "pending": len(pending),
                   "latency_p50_ms": percentile(lat, 50), "latency_p95_ms": percentile(lat, 95), "latency_max_ms": max(lat) if lat else None,
                   "batch_s": batch_s, "containers_per_s": len(lat) / batch_s if batch_s > 0 else None,
                   "mem_available_mb": host.meminfo().get("MemAvailable", 0) / 1024**2, "tasks_total": tasks, "load1": load1,
                   "memcg": host.memcg_count(), "stop": stop, "error": failed or reason}
            rec.batch(row)
            say(f"batch {number:>2}: {len(created):>4} asked, {len(watcher.ready_at):>4} Ready, {len(pending):>3} Pending, "
                f"create->Ready p50 {row['latency_p50_ms'] or 0:>6.0f} ms p95 {row['latency_p95_ms'] or 0:>6.0f} ms"
                + (f"  ({reason.split('.')[0]})" if reason else "") + (f"  -> stop: {stop}" if stop else ""))
            if stop in ("error", "budget"):
                break
        all_lat = sorted(1000 * (watcher.ready_at[n] - created[n]) for n in created if n in watcher.ready_at)
        pending_reasons = [watcher.unschedulable[n] for n in created if n in watcher.unschedulable and n not in watcher.ready_at]
        observed = {"requested": len(created), "running": len(watcher.ready_at), "pending": len(created) - len(watcher.ready_at),
                    "pods_on_node": _pods_on(core, node_name), "reason": pending_reasons[0] if pending_reasons else "",
                    "p50_ms": percentile(all_lat, 50), "p99_ms": percentile(all_lat, 99), "max_ms": all_lat[-1] if all_lat else None,
                    "stop": stop or ("max pods" if pending_reasons else "all requested")}
        status = "completed"
    except Stopped as exc:
        observed["stop"], status = f"interrupted ({exc.signame})", "interrupted"
        raise
    finally:
        for sig in previous:
            signal.signal(sig, lambda *_: None)
        watcher.stop()
        try:
            observed["teardown_s"] = round(_delete_namespace(core, namespace, 180), 2)
            say(f"deleted namespace {namespace} in {observed['teardown_s']:.1f} s")
        finally:
            rec.note(round(time.monotonic() - t0, 3), f"stop: {observed.get('stop')}; {observed.get('reason', '')}".rstrip("; "), observed=observed)
            rec.finish(status)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    return PodsResult(rec.dir, observed)


def render_result(result: PodsResult) -> str:
    from scalelab.density.figure import summary

    return f"run directory: {result.run_dir}\n{summary(result.run_dir)}\n"
