"""The Kubernetes platform: one namespace per run on kind or any cluster from a kubeconfig.

`KubernetesPlatform` implements `scalelab.platforms.base.Platform`. ``up`` creates the run's
namespace with the Deployment, the NodePort Service and (``hpa`` scalers only) the HPA rendered
from ``k8s/`` (`scalelab.platforms.k8s_manifests`); ``scale`` patches the Deployment's scale
subresource (the "Kubernetes without HPA" comparison); ``observe`` samples once a second what
the Deployment, the HPA and the kubelets report; ``down`` deletes the namespace. Everything
scalelab creates carries ``app.kubernetes.io/managed-by=scalelab``, so `down_all` finds it
without a state file.
"""

from __future__ import annotations

import time
from pathlib import Path
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from scalelab.errors import PlatformError, PreflightError
from scalelab.platforms import k8s_status as st
from scalelab.platforms.base import Observation
from scalelab.platforms.k8s_client import KIND_CONTEXT, Target, check_reachable, new_api_client, raw, resolve_target
from scalelab.platforms.k8s_manifests import APP_LABEL, SCALELAB_SELECTOR, Manifests, namespace_for, render, write_rendered
from scalelab.scenario import HPAScaler, Scenario
from scalelab.versions import AGENT_IMAGE

__all__ = [
    "KubernetesPlatform",
    "connect",
    "down_all",
    "find_run_namespaces",
    "attach_namespace",
    "scale_namespace",
    "metrics_api_problem",
    "up_standalone",
    "down_target",
    "scale_standalone",
]

LAB = "03-kind-cluster-and-hpa"
_SELECTOR = ",".join(f"{k}={v}" for k, v in APP_LABEL.items())
_METRICS_APISERVICE = "v1beta1.metrics.k8s.io"


def connect(target: Target) -> Any:
    """An ApiClient for a reachable cluster (PreflightError otherwise)."""
    api = new_api_client(target)
    check_reachable(api, target)
    return api


# --- cluster-wide helpers (also used by kind.py and the CLI) -------------------------------------


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
    except Exception:  # best effort: the log is an explanation, not a requirement
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
        _delete_namespace(api, name)
    _wait_namespaces_gone(api, names, timeout_s)
    return names


def _delete_namespace(api: Any, name: str) -> None:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    try:
        client.CoreV1Api(api).delete_namespace(name, _request_timeout=10)
    except ApiException as exc:
        if exc.status != 404:
            raise PlatformError(f"cannot delete namespace {name}: {exc.status} {exc.reason}", fix=f"kubectl delete namespace {name}", lab=LAB) from None


def _wait_namespaces_gone(api: Any, names: list[str], timeout_s: float) -> None:
    from kubernetes import client

    deadline = time.monotonic() + timeout_s
    left = set(names)
    while left:
        present = {ns["metadata"]["name"] for ns in raw(client.CoreV1Api(api).list_namespace, label_selector=SCALELAB_SELECTOR).get("items") or []}
        left &= present
        if not left:
            return
        if time.monotonic() > deadline:
            raise PlatformError(
                f"namespace(s) {', '.join(sorted(left))} still terminating after {timeout_s:.0f} s",
                fix=f"check `kubectl get ns {' '.join(sorted(left))} -o yaml` (finalizers), then run `scalelab down kubernetes` again",
                lab=LAB,
            )
        time.sleep(1.0)


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


# --- the platform --------------------------------------------------------------------------------


class KubernetesPlatform:
    """One run of one scenario arm on a Kubernetes cluster (kind by default)."""

    name = "kubernetes"

    def __init__(
        self,
        scenario: Scenario,
        arm: str | None,
        *,
        run_id: str,
        kubeconfig: str | None = None,
        context: str | None = None,
        image: str = AGENT_IMAGE,
        k8s_dir: str | None = None,
    ) -> None:
        self.scenario = scenario
        self.arm_name, self.arm = scenario.arm(arm)
        self.run_id = run_id
        self.target = resolve_target(kubeconfig, context)
        self.image = image
        self.k8s_dir = k8s_dir
        self.namespace = namespace_for(run_id)
        self.base_url = ""
        self.info: dict[str, Any] = {"kubeconfig": self.target.kubeconfig, "context": self.target.context, "namespace": self.namespace}
        self._api: Any = None
        self._manifests: Manifests | None = None
        self._rates = st.CpuRates()
        self._events = st.EventLog()
        self._conditions: dict[str, tuple[str, str, str]] = {}
        self._pods: dict[str, st.PodView] = {}
        self._last_events_poll = 0.0
        self._last_desired: int | None = None
        self._own_scale: int | None = None
        self._samples = 0
        self._last_ready = 0

    # -- helpers -------------------------------------------------------------------------------
    @property
    def api(self) -> Any:
        if self._api is None:
            self._api = connect(self.target)
        return self._api

    @property
    def has_hpa(self) -> bool:
        return isinstance(self.arm.scaler, HPAScaler)

    def manifests(self, replicas: int | None = None) -> Manifests:
        if self._manifests is None or replicas is not None:
            self._manifests = render(self.scenario, self.arm_name, self.run_id, replicas=replicas, k8s_dir=self.k8s_dir, image=self.image)
        return self._manifests

    # -- Platform --------------------------------------------------------------------------------
    def preflight(self) -> None:
        from kubernetes import client

        api = self.api
        self.info["server_version"] = check_reachable(api, self.target)
        m = self.manifests()
        core = client.CoreV1Api(api)
        leftovers = [ns["metadata"]["name"] for ns in find_run_namespaces(api)]
        if leftovers:
            raise PreflightError(
                f"namespace(s) from an earlier run still exist: {', '.join(leftovers)} (they hold NodePort {m.node_port})",
                fix="remove them: `scalelab down kubernetes` (make lab-down)",
                lab=LAB,
            )
        for svc in raw(core.list_service_for_all_namespaces).get("items") or []:
            if any(p.get("nodePort") == m.node_port for p in (svc.get("spec") or {}).get("ports") or []):
                meta = svc["metadata"]
                raise PreflightError(
                    f"NodePort {m.node_port} is taken by service {meta.get('namespace')}/{meta.get('name')}",
                    fix=f"delete it (`kubectl -n {meta.get('namespace')} delete svc {meta.get('name')}`) or change nodePort in k8s/service.yaml",
                    lab=LAB,
                )
        nodes = raw(core.list_node).get("items") or []
        ready = [n for n in nodes if any(c.get("type") == "Ready" and c.get("status") == "True" for c in (n.get("status") or {}).get("conditions") or [])]
        if not ready:
            raise PreflightError(f"no Ready node in {self.target.describe()} ({len(nodes)} nodes)", fix="check `kubectl get nodes`; wait for the nodes to become Ready", lab=LAB)
        self.info["nodes"] = [n["metadata"]["name"] for n in ready]
        self._check_image(nodes)
        if self.has_hpa:
            problem = metrics_api_problem(api)
            if problem is not None:
                raise problem
            self.info["controller_flags"] = _hpa_controller_flags(core)

    def _check_image(self, nodes: list[dict[str, Any]]) -> None:
        listed = [img for n in nodes for img in (n.get("status") or {}).get("images") or []]
        names = {name for img in listed for name in img.get("names") or []}
        complete = all(len((n.get("status") or {}).get("images") or []) < 50 for n in nodes)  # kubelet lists at most 50
        wanted = {self.image, f"docker.io/library/{self.image}"}
        if complete and not (names & wanted):
            cluster = self.target.kind_cluster
            how = f"kind load docker-image {self.image} --name {cluster}" if cluster else "import it into every node's container runtime (CI: tests/cluster/cluster.sh load)"
            raise PreflightError(
                f"image {self.image} is not on any node of {self.target.describe()}, and the cluster cannot pull it",
                fix=f"build it (`scalelab image`), then {how}",
                lab=LAB,
            )

    def up(self, replicas: int) -> None:
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        m = self.manifests(replicas)
        api = self.api
        core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
        try:
            core.create_namespace(client.V1Namespace.from_dict(m.namespace), _request_timeout=10)
            apps.create_namespaced_deployment(m.ns, client.V1Deployment.from_dict(m.deployment), field_manager="scalelab", _request_timeout=10)
            core.create_namespaced_service(m.ns, client.V1Service.from_dict(m.service), field_manager="scalelab", _request_timeout=10)
            if m.hpa is not None:
                client.AutoscalingV2Api(api).create_namespaced_horizontal_pod_autoscaler(
                    m.ns, client.V2HorizontalPodAutoscaler.from_dict(m.hpa), field_manager="scalelab", _request_timeout=10
                )
        except ApiException as exc:
            self.down()
            raise PlatformError(f"creating the run's objects in namespace {m.ns} failed: {exc.status} {exc.reason}: {str(exc.body)[:400]}", fix="read the message; `kubectl apply --dry-run=server -f k8s/` shows the same check", lab=LAB) from None
        self.base_url = f"http://127.0.0.1:{m.node_port}"
        self.info.update(base_url=self.base_url, hpa=m.hpa is not None)

    def save_rendered(self, run_dir: Path) -> Path:
        """Write the manifests this run applied into its run directory (``k8s-rendered.yaml``)."""
        return write_rendered(self.manifests(), run_dir)

    def wait_ready(self, replicas: int, timeout_s: float) -> None:
        """Pods ready, NodePort answering on 127.0.0.1 and (HPA arms) the HPA seeing CPU."""
        from kubernetes import client

        deadline = time.monotonic() + timeout_s
        apps, core = client.AppsV1Api(self.api), client.CoreV1Api(self.api)
        while True:
            dep = raw(apps.read_namespaced_deployment, "ai-agent", self.namespace)
            pods = raw(core.list_namespaced_pod, self.namespace, label_selector=_SELECTOR).get("items") or []
            problem = st.diagnose_pods(pods, image=self.image, kind_cluster=self.target.kind_cluster)
            if problem is not None:
                raise problem
            if int((dep.get("status") or {}).get("readyReplicas") or 0) >= replicas:
                break
            if time.monotonic() > deadline:
                states = ", ".join(f"{v.name} {v.phase}{' ready' if v.ready else ''}" for v in map(st.pod_view, pods)) or "no pods"
                raise PlatformError(f"{replicas} ready replicas not reached in {timeout_s:.0f} s ({states})", fix=f"kubectl -n {self.namespace} describe pods", lab=LAB)
            time.sleep(1.0)
        self._wait_node_port(deadline)
        if self.has_hpa:
            self._wait_hpa_metrics(deadline)
        # bring-up events (cold-start probes, the HPA's first "no metrics yet") are not the run's
        self._events.prime(raw(core.list_namespaced_event, self.namespace).get("items") or [])

    def _wait_node_port(self, deadline: float) -> None:
        url = f"{self.base_url}/readyz"
        last = ""
        while True:
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - 127.0.0.1 only
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError) as exc:
                last = str(exc)
            if time.monotonic() > deadline:
                if self.target.kind_cluster:
                    fix = "the kind cluster must publish the NodePort: recreate it from k8s/kind-cluster.yaml (`scalelab cluster down && scalelab cluster up`)"
                else:
                    fix = "the cluster must answer NodePorts on 127.0.0.1 (kube-proxy iptables.localhostNodePorts), or port-forward: kubectl -n NS port-forward svc/ai-agent 30080:80"
                raise PlatformError(f"NodePort not reachable: {url} did not answer 200 ({last[:200]})", fix=fix, lab=LAB)
            time.sleep(1.0)

    def _wait_hpa_metrics(self, deadline: float) -> None:
        from kubernetes import client

        auto = client.AutoscalingV2Api(self.api)
        while True:
            hpa = raw(auto.read_namespaced_horizontal_pod_autoscaler, "ai-agent", self.namespace)
            problem = st.diagnose_hpa(hpa)
            if problem is not None:
                raise problem
            status = st.hpa_status(hpa)
            if status.util_pct is not None:
                self._conditions = status.conditions
                return
            if time.monotonic() > deadline:
                active = status.conditions.get("ScalingActive", ("?", "?", "no status yet"))
                raise PlatformError(
                    f"HPA target stays <unknown>: ScalingActive={active[0]} {active[1]}: {active[2][:300]}",
                    fix=(metrics_api_problem(self.api) or PreflightError("", fix="check metrics-server: `kubectl top pods -A`")).fix,
                    lab=LAB,
                )
            time.sleep(1.0)

    def scale(self, replicas: int) -> None:
        self._own_scale = int(replicas)
        scale_namespace(self.api, self.namespace, replicas)

    def observe(self) -> Observation:
        """One sample: Deployment, HPA, pods and placement, kubelet CPU/memory, new events."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        api = self.api
        core = client.CoreV1Api(api)
        events: list[dict[str, Any]] = []
        try:
            dep = raw(client.AppsV1Api(api).read_namespaced_deployment, "ai-agent", self.namespace, timeout_s=2.0)
            pods = raw(core.list_namespaced_pod, self.namespace, label_selector=_SELECTOR, timeout_s=2.0).get("items") or []
        except (ApiException, OSError, Exception) as exc:  # a missed second is recorded, not fatal
            # keep the last known counts for this second rather than recording zero replicas
            last = self._last_desired or 0
            return Observation(last, self._last_ready, events=[{"kind": "note", "source": "sampler", "detail": f"API read failed: {exc!s:.200}"}])
        desired = int((dep.get("spec") or {}).get("replicas") or 0)
        if self._last_desired is not None and desired != self._last_desired and not self.has_hpa and desired != self._own_scale:
            # someone typed `scalelab scale kubernetes N` (or kubectl scale) in another terminal
            events.append({"kind": "scale", "replicas": desired, "source": "live", "detail": f"{self._last_desired} -> {desired}"})
        self._last_desired = desired
        views = [st.pod_view(p) for p in pods]
        events.extend(self._pod_events(views))
        live = [v for v in views if not v.deleting]
        ready = sum(1 for v in live if v.ready)
        self._last_ready = ready
        placement = [{"pod": v.name, "node": v.node, "phase": "Terminating" if v.deleting else v.phase, "ready": v.ready} for v in views]

        obs = Observation(replicas_desired=desired, replicas_ready=ready, events=events, placement=placement)
        if self.has_hpa:
            self._observe_hpa(obs)
        per_pod = self._observe_usage(obs, sorted({v.node for v in views if v.node}))
        for row in placement:
            row["cpu_cores"] = per_pod.get(row["pod"])
        now = time.monotonic()
        if now - self._last_events_poll >= 2.0:
            self._last_events_poll = now
            try:
                evs = raw(core.list_namespaced_event, self.namespace, timeout_s=2.0).get("items") or []
                obs.events.extend(self._events.new(evs))
            except Exception as exc:  # noqa: BLE001
                obs.events.append({"kind": "note", "source": "sampler", "detail": f"event list failed: {exc!s:.200}"})
        return obs

    def _pod_events(self, views: list[st.PodView]) -> list[dict[str, Any]]:
        out = []
        current = {v.name: v for v in views}
        for name, v in current.items():
            old = self._pods.get(name)
            if old is None:
                out.append({"kind": "replica_start", "source": "kubernetes", "detail": f"{name} on {v.node or '(unscheduled)'}"})
            if v.ready and (old is None or not old.ready):
                out.append({"kind": "replica_ready", "source": "kubernetes", "detail": f"{name} on {v.node}"})
            if v.deleting and (old is None or not old.deleting):
                out.append({"kind": "replica_stop", "source": "kubernetes", "detail": f"{name} on {v.node} terminating"})
        for name, old in self._pods.items():
            if name not in current and not old.deleting:
                out.append({"kind": "replica_stop", "source": "kubernetes", "detail": f"{name} on {old.node} gone"})
        self._pods = current
        return out

    def _observe_hpa(self, obs: Observation) -> None:
        from kubernetes import client

        try:
            hpa = raw(client.AutoscalingV2Api(self.api).read_namespaced_horizontal_pod_autoscaler, "ai-agent", self.namespace, timeout_s=2.0)
        except Exception as exc:  # noqa: BLE001
            obs.events.append({"kind": "note", "source": "sampler", "detail": f"HPA read failed: {exc!s:.200}"})
            return
        status = st.hpa_status(hpa)
        obs.hpa_util_pct = status.util_pct
        obs.hpa_desired = status.desired_replicas
        obs.events.extend(st.condition_events(self._conditions, status.conditions))
        self._conditions = status.conditions

    def _observe_usage(self, obs: Observation, nodes: list[str]) -> dict[str, float]:
        from kubernetes import client

        core = client.CoreV1Api(self.api)
        usage: dict[tuple[str, str], st.ContainerUsage] = {}
        for node in nodes:
            try:
                text = raw(core.connect_get_node_proxy_with_path, node, "metrics/resource", timeout_s=2.0)
            except Exception as exc:  # noqa: BLE001
                obs.events.append({"kind": "note", "source": "sampler", "detail": f"kubelet metrics of {node} failed: {exc!s:.200}"})
                return {}
            usage.update(st.container_usage(str(text), self.namespace))
        per_pod = self._rates.update(usage, time.time())
        self._samples += 1
        if self._samples in (30, 120):
            res = self.cpu_resolution_s()
            obs.events.append({"kind": "note", "source": "sampler", "detail": f"kubelet CPU counters refresh every {res:.1f} s (median)" if res else "kubelet CPU counters never refreshed"})
        if per_pod:
            obs.cpu_cores_used = sum(per_pod.values())
            obs.replicas_measured = len(per_pod)
        mem = [u.memory_bytes for u in usage.values() if u.memory_bytes is not None]
        if mem:
            obs.mem_mb = sum(mem) / 2**20
        return per_pod

    def describe(self) -> dict[str, Any]:
        """For the run manifest (``platform_info``): cluster, context, namespace, nodes, controller flags."""
        return dict(self.info)

    def cpu_resolution_s(self) -> float | None:
        """Median spacing of the kubelet's CPU counter updates seen so far (the real resolution)."""
        iv = sorted(self._rates.intervals_s)
        return iv[len(iv) // 2] if iv else None

    def down(self) -> None:
        """Delete this run's namespace and wait until it is gone (no-op if it never existed)."""
        if self._api is None:
            try:
                self._api = connect(self.target)
            except PreflightError:
                return  # no cluster: nothing of ours can be left
        try:
            _delete_namespace(self._api, self.namespace)
            _wait_namespaces_gone(self._api, [self.namespace], 180.0)
        except (PlatformError, PreflightError):
            raise
        except Exception as exc:  # connection lost mid-teardown
            raise PlatformError(
                f"lost the cluster while deleting namespace {self.namespace} ({type(exc).__name__})",
                fix="when the cluster answers again: `scalelab down kubernetes` (deletes every scalelab namespace)",
                lab=LAB,
            ) from None


def up_standalone(
    scenario: Scenario,
    arm: str | None,
    *,
    replicas: int | None = None,
    kubeconfig: str | None = None,
    context: str | None = None,
    timeout_s: float = 300.0,
    echo: Callable[[str], None] = lambda _m: None,
) -> KubernetesPlatform:
    """``scalelab up kubernetes``: bring one arm up outside a run (lab 03 step by step)."""
    from scalelab.telemetry.store import new_run_id

    arm_name, arm_cfg = scenario.arm(arm)
    platform = KubernetesPlatform(scenario, arm_name, run_id=new_run_id(scenario.name, arm_name), kubeconfig=kubeconfig, context=context)
    n = arm_cfg.replicas if replicas is None else replicas
    echo(f"checking {platform.target.describe()}")
    platform.preflight()
    echo(f"creating namespace {platform.namespace}: Deployment ({n} replicas), Service{', HPA' if platform.has_hpa else ''}")
    platform.up(n)
    echo("waiting for ready pods, the NodePort" + (" and the HPA's first CPU reading" if platform.has_hpa else ""))
    try:
        platform.wait_ready(n, timeout_s)
    except BaseException:
        platform.down()
        raise
    return platform


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


def _hpa_controller_flags(core: Any) -> dict[str, str] | str:
    """The HPA flags of kube-controller-manager when it runs as a pod (kind, kubeadm); else unknown."""
    try:
        pods = raw(core.list_namespaced_pod, "kube-system", label_selector="component=kube-controller-manager").get("items") or []
    except Exception:  # noqa: BLE001 - informational only
        return "unknown"
    for pod in pods:
        command = [*(pod["spec"]["containers"][0].get("command") or []), *(pod["spec"]["containers"][0].get("args") or [])]
        return {a.split("=", 1)[0].lstrip("-"): a.split("=", 1)[1] for a in command if a.startswith("--horizontal-pod-autoscaler") and "=" in a}
    return "unknown (controller-manager does not run as a pod)"


def scale_standalone(
    replicas: int,
    *,
    namespace: str | None = None,
    kubeconfig: str | None = None,
    context: str | None = None,
    timeout_s: float = 180.0,
    echo: Callable[[str], None] = lambda _m: None,
) -> tuple[str, str]:
    """``scalelab scale kubernetes N``: scale the run that is up (or ``namespace``) and wait for ready pods.

    Returns (namespace, base URL). During `scalelab run` the running sampler records it as a
    ``live`` scale event.
    """
    from kubernetes import client

    api = connect(resolve_target(kubeconfig, context))
    ns = namespace or attach_namespace(api)
    has_hpa = bool(raw(client.AutoscalingV2Api(api).list_namespaced_horizontal_pod_autoscaler, ns).get("items"))
    if has_hpa:
        echo(f"note: {ns} has an HPA; it will override a manual scale at its next sync")
    echo(f"scaling deployment {ns}/ai-agent to {replicas}")
    scale_namespace(api, ns, replicas)
    apps = client.AppsV1Api(api)
    deadline = time.monotonic() + timeout_s
    while True:
        pods = raw(client.CoreV1Api(api).list_namespaced_pod, ns, label_selector=_SELECTOR).get("items") or []
        problem = st.diagnose_pods(pods, image=AGENT_IMAGE, kind_cluster=resolve_target(kubeconfig, context).kind_cluster)
        if problem is not None:
            raise problem
        status = raw(apps.read_namespaced_deployment, "ai-agent", ns).get("status") or {}
        if int(status.get("readyReplicas") or 0) == replicas and int(status.get("replicas") or 0) == replicas:
            break
        if time.monotonic() > deadline:
            raise PlatformError(f"{ns}: {status.get('readyReplicas') or 0}/{replicas} ready after {timeout_s:.0f} s", fix=f"kubectl -n {ns} describe pods", lab=LAB)
        time.sleep(1.0)
    svc = raw(client.CoreV1Api(api).read_namespaced_service, "ai-agent", ns)
    return ns, f"http://127.0.0.1:{svc['spec']['ports'][0]['nodePort']}"
