"""Cluster-wide Kubernetes helpers: connect, metrics API health, the kit's namespaces.

Everything scalelab creates carries ``app.kubernetes.io/managed-by=scalelab``, so these find it
without a state file. Used by the Kubernetes platform, kind, `scalelab down` and `clean`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from scalelab.errors import PlatformError, PreflightError
from scalelab.platforms.k8s_client import KIND_CONTEXT, Target, check_reachable, new_api_client, raw, resolve_target
from scalelab.platforms.k8s_manifests import SCALELAB_SELECTOR
from scalelab.poll import poll_until

__all__ = [
    "LAB",
    "connect",
    "metrics_api_problem",
    "find_run_namespaces",
    "down_all",
    "delete_namespace",
    "wait_namespaces_gone",
    "attach_namespace",
    "scale_namespace",
    "down_target",
    "hpa_controller_flags",
]

LAB = "03-kind-cluster-and-hpa"
_METRICS_APISERVICE = "v1beta1.metrics.k8s.io"


def connect(target: Target) -> Any:
    """An ApiClient for a reachable cluster (PreflightError otherwise)."""
    api = new_api_client(target)
    check_reachable(api, target)
    return api


def metrics_api_problem(api: Any) -> PreflightError | None:
    """Why ``metrics.k8s.io`` is not served (not installed, not ready, kubelet TLS), or None."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    fix_install = "install metrics-server: `scalelab cluster up` does it on kind; elsewhere `kubectl apply -f k8s/metrics-server.yaml`"
    try:
        svc = raw(client.ApiregistrationV1Api(api).read_api_service, _METRICS_APISERVICE)
    except ApiException as exc:
        if exc.status == 404:
            return PreflightError("metrics-server is not installed (no APIService v1beta1.metrics.k8s.io): the HPA has no CPU metrics", fix=fix_install, lab=LAB)
        return PreflightError(f"cannot read APIService {_METRICS_APISERVICE}: {exc.status} {exc.reason}", fix=fix_install, lab=LAB)
    cond = {c.get("type"): c for c in (svc.get("status") or {}).get("conditions") or []}.get("Available") or {}
    if cond.get("status") == "True":
        try:  # served, but does it have data yet?
            raw(client.CustomObjectsApi(api).list_cluster_custom_object, "metrics.k8s.io", "v1beta1", "nodes")
        except ApiException as exc:
            return PreflightError(f"metrics.k8s.io is registered but not serving yet ({exc.status} {exc.reason})", fix="wait a minute for the first scrapes", lab=LAB)
        return None
    message = f"{cond.get('reason', 'Unknown')}: {cond.get('message', '')}".strip()
    tls = _metrics_server_log_mentions(api, ("x509", "certificate", "tls:"))
    if tls:
        return PreflightError(
            f"metrics-server cannot scrape the kubelets (TLS): {tls[:300]}",
            fix="add --kubelet-insecure-tls to the metrics-server container args (k8s/metrics-server.yaml has it; re-apply it)",
            lab=LAB,
        )
    return PreflightError(f"metrics-server is not ready: APIService {_METRICS_APISERVICE} is {message[:300]}", fix="wait for it, then check `kubectl -n kube-system logs deploy/metrics-server`", lab=LAB)


def _metrics_server_log_mentions(api: Any, needles: tuple[str, ...]) -> str:
    from kubernetes import client

    core = client.CoreV1Api(api)
    try:
        pods = raw(core.list_namespaced_pod, "kube-system", label_selector="k8s-app=metrics-server")
        for pod in pods.get("items") or []:
            log = raw(core.read_namespaced_pod_log, pod["metadata"]["name"], "kube-system", tail_lines=50)
            for line in str(log).splitlines():
                if any(n in line for n in needles):
                    return line.strip()
    except Exception:  # noqa: BLE001 - best effort: the log is an explanation, not a requirement
        return ""
    return ""


def find_run_namespaces(api: Any) -> list[dict[str, Any]]:
    """Namespaces scalelab created (label ``app.kubernetes.io/managed-by=scalelab``)."""
    from kubernetes import client

    return list(raw(client.CoreV1Api(api).list_namespace, label_selector=SCALELAB_SELECTOR).get("items") or [])


def down_all(api: Any, *, timeout_s: float = 180.0, echo: Callable[[str], None] = lambda _m: None) -> list[str]:
    """Delete every scalelab namespace and wait (bounded) until they are gone. No-op when none."""
    names = [ns["metadata"]["name"] for ns in find_run_namespaces(api)]
    for name in names:
        echo(f"deleting namespace {name}")
        delete_namespace(api, name)
    wait_namespaces_gone(api, names, timeout_s)
    return names


def delete_namespace(api: Any, name: str) -> None:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    try:
        client.CoreV1Api(api).delete_namespace(name, _request_timeout=10)
    except ApiException as exc:
        if exc.status != 404:
            raise PlatformError(f"cannot delete namespace {name}: {exc.status} {exc.reason}", fix=f"kubectl delete namespace {name}", lab=LAB) from None


def wait_namespaces_gone(api: Any, names: list[str], timeout_s: float) -> None:
    from kubernetes import client

    left = set(names)

    def gone() -> bool:
        present = {ns["metadata"]["name"] for ns in raw(client.CoreV1Api(api).list_namespace, label_selector=SCALELAB_SELECTOR).get("items") or []}
        left.intersection_update(present)
        return not left

    if not poll_until(gone, timeout_s=timeout_s, interval_s=1.0):
        raise PlatformError(
            f"namespace(s) {', '.join(sorted(left))} still terminating after {timeout_s:.0f} s",
            fix=f"check `kubectl get ns {' '.join(sorted(left))} -o yaml` (finalizers), then run `scalelab down kubernetes` again",
            lab=LAB,
        )


def attach_namespace(api: Any) -> str:
    """The namespace of the one scalelab run in the cluster (for ``scalelab scale kubernetes N``)."""
    names = [ns["metadata"]["name"] for ns in find_run_namespaces(api) if not (ns.get("metadata") or {}).get("deletionTimestamp")]
    if not names:
        raise PlatformError("no scalelab run is up in this cluster", fix="start one: `scalelab up kubernetes` (make lab03-deploy)", lab=LAB)
    if len(names) > 1:
        raise PlatformError(f"several scalelab namespaces: {', '.join(names)}", fix="remove the stale ones: `scalelab down kubernetes`", lab=LAB)
    return names[0]


def scale_namespace(api: Any, namespace: str, replicas: int, *, name: str = "ai-agent") -> None:
    """Set the Deployment's replicas through its scale subresource."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    try:
        client.AppsV1Api(api).patch_namespaced_deployment_scale(name, namespace, {"spec": {"replicas": int(replicas)}}, _request_timeout=10)
    except ApiException as exc:
        raise PlatformError(f"cannot scale deployment {namespace}/{name}: {exc.status} {exc.reason}", fix="is the run still up? `kubectl get deploy -A -l app.kubernetes.io/managed-by=scalelab`", lab=LAB) from None


def down_target(kubeconfig: str | None = None, context: str | None = None, *, timeout_s: float = 180.0, echo: Callable[[str], None] = lambda _m: None) -> list[str]:
    """``scalelab down kubernetes``: delete every scalelab namespace of the target cluster.

    No-op when there are none, and when the default kind cluster does not exist; a cluster named
    explicitly (--kubeconfig/--context/$KUBECONFIG) that does not answer is an error.
    """
    target = resolve_target(kubeconfig, context)
    try:
        api = connect(target)
    except PreflightError:
        if target.context != KIND_CONTEXT:
            raise
        echo(f"no reachable cluster for {target.describe()}: nothing to delete")
        return []
    names = down_all(api, timeout_s=timeout_s, echo=echo)
    if not names:
        echo(f"no scalelab namespaces in {target.describe()}: nothing to delete")
    return names


def hpa_controller_flags(core: Any) -> dict[str, str] | str:
    """The HPA flags of kube-controller-manager when it runs as a pod (kind, kubeadm); else unknown."""
    try:
        pods = raw(core.list_namespaced_pod, "kube-system", label_selector="component=kube-controller-manager").get("items") or []
    except Exception:  # noqa: BLE001 - informational only
        return "unknown"
    for pod in pods:
        command = [*(pod["spec"]["containers"][0].get("command") or []), *(pod["spec"]["containers"][0].get("args") or [])]
        return {a.split("=", 1)[0].lstrip("-"): a.split("=", 1)[1] for a in command if a.startswith("--horizontal-pod-autoscaler") and "=" in a}
    return "unknown (controller-manager does not run as a pod)"
