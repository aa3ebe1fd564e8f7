"""The Kubernetes platform: one namespace per run on kind or any cluster from a kubeconfig.

`KubernetesPlatform` implements `scalelab.platforms.base.Platform`. ``up`` creates the run's
namespace with the Deployment, the NodePort Service and (``hpa`` scalers only) the HPA rendered
from ``k8s/`` (`scalelab.platforms.k8s_manifests`); ``scale`` patches the Deployment's scale
subresource (the "Kubernetes without HPA" comparison); ``observe`` samples once a second what
the Deployment, the HPA and the kubelets report; ``down`` deletes the namespace. Cluster-wide
helpers (the kit's namespaces, metrics API health) are in `scalelab.platforms.k8s_cluster`.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

from scalelab.errors import PlatformError, PreflightError
from scalelab.netcheck import http_ok
from scalelab.platforms import k8s_status as st
from scalelab.platforms.base import Observation, PlatformOptions, Say
from scalelab.platforms.k8s_client import check_reachable, raw, resolve_target
from scalelab.platforms.k8s_cluster import (
    LAB,
    attach_namespace,
    connect,
    delete_namespace,
    down_target,
    find_run_namespaces,
    hpa_controller_flags,
    metrics_api_problem,
    scale_namespace,
    wait_namespaces_gone,
)
from scalelab.platforms.k8s_manifests import APP_LABEL, Manifests, cpu_quantity, namespace_for, render, write_rendered
from scalelab.platforms.kind_hosts import KindHosts
from scalelab.poll import Deadline
from scalelab.registry import platform_spec
from scalelab.scenario import Arm, HPAScaler, Scenario
from scalelab.versions import AGENT_IMAGE

__all__ = ["KubernetesPlatform", "KubernetesKind", "KIND", "connect", "find_run_namespaces"]

_SELECTOR = ",".join(f"{k}={v}" for k, v in APP_LABEL.items())


# --- the platform --------------------------------------------------------------------------------


class KubernetesPlatform:
    """One run of one scenario arm on a Kubernetes cluster (kind by default)."""

    name = "kubernetes"

    def __init__(
        self,
        scenario: Scenario | None,
        arm: str | None,
        *,
        run_id: str,
        kubeconfig: str | None = None,
        context: str | None = None,
        image: str = AGENT_IMAGE,
        k8s_dir: str | None = None,
        namespace: str | None = None,
    ) -> None:
        """``scenario`` None: attached to a namespace the kit started earlier (`KubernetesKind.attach`)."""
        self.scenario = scenario
        self.arm_name = arm or ""
        self.arm: Arm | None = None
        if scenario is not None:
            self.arm_name, self.arm = scenario.arm(arm)
        self.run_id = run_id
        self.target = resolve_target(kubeconfig, context)
        self.image = image
        self.k8s_dir = k8s_dir
        self.namespace = namespace or namespace_for(run_id)
        self._has_hpa = isinstance(self.arm.scaler, HPAScaler) if self.arm is not None else False
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
        #: kind only: the workers as the scenario's hosts (caps, hosts.csv, node loss); None elsewhere
        self._kind_hosts: KindHosts | None = None
        self._node_ready: dict[str, tuple[str, str]] = {}

    # -- helpers -------------------------------------------------------------------------------
    @property
    def api(self) -> Any:
        if self._api is None:
            self._api = connect(self.target)
        return self._api

    @property
    def has_hpa(self) -> bool:
        return self._has_hpa

    def manifests(self, replicas: int | None = None) -> Manifests:
        if self.scenario is None:
            raise PlatformError("an attached run has no scenario to render manifests from", fix="start a run with `scalelab run` or `scalelab up kubernetes`")
        if self._manifests is None or replicas is not None:
            self._manifests = render(self.scenario, self.arm_name, self.run_id, replicas=replicas, k8s_dir=self.k8s_dir, image=self.image)
        return self._manifests

    # -- Platform --------------------------------------------------------------------------------
    def preflight(self) -> None:
        from kubernetes import client

        api = self.api
        self.info["server_version"] = check_reachable(api, self.target)
        m = self.manifests()
        if self.scenario is not None:
            from scalelab.hosts.spec import host_specs

            self._kind_hosts = KindHosts.for_run(host_specs(self.scenario), self.target.kind_cluster,
                                                 source=self.scenario.source or self.scenario.name, describe=self.target.describe())
            if self._kind_hosts is not None:
                self.info["hosts"] = self._kind_hosts.describe()
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
        # What the nodes really run (the manifest's `versions` block holds the kit's pins, e.g. the
        # published kind image, which a cluster built from the local node image does not use).
        self.info["node_info"] = {
            n["metadata"]["name"]: {k: ((n.get("status") or {}).get("nodeInfo") or {}).get(k) for k in ("kubeletVersion", "osImage", "containerRuntimeVersion")}
            for n in ready
        }
        self.check_image_on_nodes(nodes, self.image)
        if self.has_hpa:
            problem = metrics_api_problem(api)
            if problem is not None:
                raise problem
            self.info["controller_flags"] = hpa_controller_flags(core)

    def check_image_on_nodes(self, nodes: list[dict[str, Any]], image: str) -> None:
        """PreflightError when no node lists ``image`` (the kit's images are loaded, never pulled)."""
        listed = [img for n in nodes for img in (n.get("status") or {}).get("images") or []]
        names = {name for img in listed for name in img.get("names") or []}
        complete = all(len((n.get("status") or {}).get("images") or []) < 50 for n in nodes)  # kubelet lists at most 50
        wanted = {image, f"docker.io/library/{image}"}
        if complete and not (names & wanted):
            cluster = self.target.kind_cluster
            how = f"kind load docker-image {image} --name {cluster}" if cluster else f"import it into every node's container runtime (CI: tests/cluster/cluster.sh load {image})"
            raise PreflightError(
                f"image {image} is not on any node of {self.target.describe()}, and the cluster cannot pull it",
                fix=f"build it (`scalelab image`), then {how}",
                lab=LAB,
            )

    def up(self, replicas: int) -> None:
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        m = self.manifests(replicas)
        api = self.api
        core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
        if self._kind_hosts is not None:
            self._kind_hosts.apply_caps()
        try:
            core.create_namespace(_model(client.V1Namespace, m.namespace), _request_timeout=10)
            apps.create_namespaced_deployment(m.ns, _model(client.V1Deployment, m.deployment), field_manager="scalelab", _request_timeout=10)
            core.create_namespaced_service(m.ns, _model(client.V1Service, m.service), field_manager="scalelab", _request_timeout=10)
            if m.hpa is not None:
                client.AutoscalingV2Api(api).create_namespaced_horizontal_pod_autoscaler(
                    m.ns, _model(client.V2HorizontalPodAutoscaler, m.hpa), field_manager="scalelab", _request_timeout=10
                )
        except ApiException as exc:
            self.down()
            raise PlatformError(f"creating the run's objects in namespace {m.ns} failed: {exc.status} {exc.reason}: {str(exc.body)[:400]}", fix="read the message; `kubectl apply --dry-run=server -f k8s/` shows the same check", lab=LAB) from None
        self.base_url = f"http://127.0.0.1:{m.node_port}"
        self.info.update(base_url=self.base_url, hpa=m.hpa is not None)

    def save_rendered(self, run_dir: Path) -> Path | None:
        """Write the manifests this run applied into its run directory (``k8s-rendered.yaml``); None when attached."""
        return None if self.scenario is None else write_rendered(self.manifests(), run_dir)

    def wait_ready(self, replicas: int, timeout_s: float) -> None:
        """Pods ready, NodePort answering on 127.0.0.1 and (HPA arms) the HPA seeing CPU."""
        from kubernetes import client

        deadline = Deadline(timeout_s)
        apps, core = client.AppsV1Api(self.api), client.CoreV1Api(self.api)
        pods: list[dict[str, Any]] = []

        def pods_ready() -> bool:
            nonlocal pods
            dep = raw(apps.read_namespaced_deployment, "ai-agent", self.namespace)
            pods = raw(core.list_namespaced_pod, self.namespace, label_selector=_SELECTOR).get("items") or []
            problem = st.diagnose_pods(pods, image=self.image, kind_cluster=self.target.kind_cluster)
            if problem is not None:
                raise problem
            status = dep.get("status") or {}
            return int(status.get("readyReplicas") or 0) >= replicas

        if not deadline.poll(pods_ready):
            states = ", ".join(f"{v.name} {v.phase}{' ready' if v.ready else ''}" for v in map(st.pod_view, pods)) or "no pods"
            raise PlatformError(f"{replicas} ready replicas not reached in {timeout_s:.0f} s ({states})", fix=f"kubectl -n {self.namespace} describe pods", lab=LAB)
        self._wait_node_port(deadline)
        if self.has_hpa:
            self._wait_hpa_metrics(deadline)
        # bring-up events (cold-start probes, the HPA's first "no metrics yet") are not the run's
        self._events.prime(raw(core.list_namespaced_event, self.namespace).get("items") or [])

    def _wait_node_port(self, deadline: Deadline) -> None:
        url = f"{self.base_url}/readyz"
        if not deadline.poll(lambda: http_ok(url, timeout_s=2.0)):
            if self.target.kind_cluster:
                fix = "the kind cluster must publish the NodePort: recreate it from k8s/kind-cluster.yaml (`scalelab cluster down && scalelab cluster up`)"
            else:
                fix = "the cluster must answer NodePorts on 127.0.0.1 (kube-proxy iptables.localhostNodePorts), or port-forward: kubectl -n NS port-forward svc/ai-agent 30080:80"
            raise PlatformError(f"NodePort not reachable: {url} did not answer 200", fix=fix, lab=LAB)

    def _wait_hpa_metrics(self, deadline: Deadline) -> None:
        from kubernetes import client

        auto = client.AutoscalingV2Api(self.api)
        last: list[st.HpaStatus] = []

        def seeing_cpu() -> bool:
            hpa = raw(auto.read_namespaced_horizontal_pod_autoscaler, "ai-agent", self.namespace)
            problem = st.diagnose_hpa(hpa)
            if problem is not None:
                raise problem
            last[:] = [st.hpa_status(hpa)]
            return last[0].util_pct is not None

        if deadline.poll(seeing_cpu):
            self._conditions = last[0].conditions
            return
        active = last[0].conditions.get("ScalingActive", ("?", "?", "no status yet")) if last else ("?", "?", "no status yet")
        raise PlatformError(
            f"HPA target stays <unknown>: ScalingActive={active[0]} {active[1]}: {active[2][:300]}",
            fix=(metrics_api_problem(self.api) or PreflightError("", fix="check metrics-server: `kubectl top pods -A`")).fix,
            lab=LAB,
        )

    def check_limits(self) -> None:
        """Fail if the Deployment does not carry the scenario's CPU limit (the kubelet enforces what it carries)."""
        from kubernetes import client

        if self.scenario is None:
            return
        dep = raw(client.AppsV1Api(self.api).read_namespaced_deployment, "ai-agent", self.namespace)
        containers = ((dep.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers") or [{}]
        got = ((containers[0].get("resources") or {}).get("limits") or {}).get("cpu")
        want = cpu_quantity(self.scenario.workload.cpu_limit)
        if got != want:
            raise PlatformError(f"the ai-agent Deployment runs with a CPU limit of {got}, expected {want}",
                                fix="check k8s/deployment.yaml and admission webhooks or LimitRanges in the cluster", lab=LAB)

    def current_replicas(self) -> int:
        from kubernetes import client

        dep = raw(client.AppsV1Api(self.api).read_namespaced_deployment, "ai-agent", self.namespace)
        return int((dep.get("spec") or {}).get("replicas") or 0)

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
        except (ApiException, OSError, Exception) as exc:  # noqa: BLE001 - a missed second is recorded, not fatal
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
        down = self._observe_nodes(obs)
        if self._kind_hosts is not None:
            obs.hosts = self._kind_hosts.rows(Counter(v.node for v in live if v.node))
        per_pod = self._observe_usage(obs, sorted({v.node for v in views if v.node and v.node not in down}))
        for row in placement:
            row["cpu_cores"] = per_pod.get(str(row["pod"]))
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
            if old is not None and v.restarts > old.restarts:
                down = f", down {v.down_s:g} s" if v.down_s is not None else ""
                out.append({"kind": "replica_restart", "source": "kubernetes", "detail": f"{name} restart {v.restarts} ({v.last_exit}{down})"})
            if v.ready and (old is None or not old.ready):
                out.append({"kind": "replica_ready", "source": "kubernetes", "detail": f"{name} on {v.node}"})
            if v.deleting and (old is None or not old.deleting):
                out.append({"kind": "replica_stop", "source": "kubernetes", "detail": f"{name} on {v.node} terminating"})
        for name, old in self._pods.items():
            if name not in current and not old.deleting:
                out.append({"kind": "replica_stop", "source": "kubernetes", "detail": f"{name} on {old.node} gone"})
        self._pods = current
        return out

    def _observe_nodes(self, obs: Observation) -> set[str]:
        """Node Ready changes as events; returns the nodes not to ask for metrics (not Ready, or stopped by a node-loss fault)."""
        from kubernetes import client

        stopped = self._kind_hosts.stopped_nodes if self._kind_hosts is not None else set()
        try:
            nodes = raw(client.CoreV1Api(self.api).list_node, timeout_s=2.0).get("items") or []
        except Exception as exc:  # noqa: BLE001
            obs.events.append({"kind": "note", "source": "sampler", "detail": f"node list failed: {exc!s:.200}"})
            return stopped | {n for n, (status, _) in self._node_ready.items() if status != "True"}
        now = st.node_ready(nodes)
        obs.events.extend(st.node_events(self._node_ready, now))
        self._node_ready = now
        return stopped | {n for n, (status, _) in now.items() if status != "True"}

    def stop_host(self, name: str) -> str:
        """Fault ``node-loss``: stop host ``name``'s worker node container (kind only); returns how."""
        if self._kind_hosts is None:
            raise PlatformError("node-loss needs the scenario's hosts on the kind cluster's workers", fix="run on the kind cluster with hosts: in the scenario", lab=LAB)
        return self._kind_hosts.stop(name)

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
            except Exception as exc:  # noqa: BLE001 - one node's kubelet gone: the others still count
                obs.events.append({"kind": "note", "source": "sampler", "detail": f"kubelet metrics of {node} failed: {exc!s:.200}"})
                continue
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
        """Lift the node caps and start lost nodes (kind hosts), delete this run's namespace and wait until it is gone."""
        if self._kind_hosts is not None:  # first: pods on a stopped node finish deleting only when its kubelet is back
            self._kind_hosts.restore()
        if self._api is None:
            try:
                self._api = connect(self.target)
            except PreflightError:
                return  # no cluster: nothing of ours can be left
        try:
            delete_namespace(self._api, self.namespace)
            wait_namespaces_gone(self._api, [self.namespace], 180.0)
        except (PlatformError, PreflightError):
            raise
        except Exception as exc:  # noqa: BLE001 - connection lost mid-teardown
            raise PlatformError(
                f"lost the cluster while deleting namespace {self.namespace} ({type(exc).__name__})",
                fix="when the cluster answers again: `scalelab down kubernetes` (deletes every scalelab namespace)",
                lab=LAB,
            ) from None




def _model(cls: Any, data: Any) -> Any:
    """A kubernetes client model from a manifest dict (``from_dict`` is typed as optional)."""
    obj = cls.from_dict(data)
    if obj is None:
        raise PlatformError(f"cannot build a {cls.__name__} from the rendered manifest", fix="check k8s/*.yaml", lab=LAB)
    return obj


class KubernetesKind:
    """`scalelab.platforms.base.PlatformKind` for Kubernetes (kind, or any kubeconfig)."""

    spec = platform_spec("kubernetes")

    def create(self, scenario: Any, arm: str, *, run_id: str, options: PlatformOptions) -> KubernetesPlatform:
        return KubernetesPlatform(scenario, arm, run_id=run_id, kubeconfig=options.kubeconfig, context=options.context)

    def attach(self, options: PlatformOptions) -> KubernetesPlatform:
        """The run the kit started in the cluster (``options.project`` = its namespace, or the only one)."""
        from kubernetes import client

        target = resolve_target(options.kubeconfig, options.context)
        api = connect(target)
        ns = options.project or attach_namespace(api)
        try:
            svc = raw(client.CoreV1Api(api).read_namespaced_service, "ai-agent", ns)
            hpas = raw(client.AutoscalingV2Api(api).list_namespaced_horizontal_pod_autoscaler, ns).get("items") or []
            dep = raw(client.AppsV1Api(api).read_namespaced_deployment, "ai-agent", ns)
        except Exception as exc:  # noqa: BLE001 - a namespace without the kit's objects
            raise PlatformError(f"namespace {ns} has no scalelab deployment ({str(exc)[:120]})", fix="`scalelab down kubernetes`, then `scalelab up kubernetes`", lab=LAB) from None
        plat = KubernetesPlatform(None, None, run_id=ns, kubeconfig=options.kubeconfig, context=options.context, namespace=ns)
        plat._api = api
        plat._has_hpa = bool(hpas)
        plat.base_url = f"http://127.0.0.1:{svc['spec']['ports'][0]['nodePort']}"
        plat._last_desired = int((dep.get("spec") or {}).get("replicas") or 0)
        return plat

    def running(self, options: PlatformOptions) -> list[str]:
        target = resolve_target(options.kubeconfig, options.context)
        try:
            api = connect(target)
        except PreflightError:
            return []
        return [ns["metadata"]["name"] for ns in find_run_namespaces(api)]

    def down_all(self, options: PlatformOptions, say: Say) -> list[str]:
        return down_target(options.kubeconfig, options.context, echo=say)

    def doctor_checks(self) -> list[Any]:
        return []


KIND = KubernetesKind()
