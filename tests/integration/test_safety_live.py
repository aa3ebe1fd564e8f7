"""The safety suite, live half: the real API server's Pod Security admission, and the real
listening sockets of the test cluster and of running arms (docs/security.md).

- Admission: the rendered run manifests are server-side dry-run applied into a namespace that
  enforces the "restricted" standard, their pods are dry-run created there (admission enforces on
  pods, it only warns on Deployments), and a deliberately non-compliant pod must be rejected.
- Sockets: ``ss -ltnp`` while the test cluster runs and while a short compose arm and a short
  Kubernetes arm run; every socket a kit process holds must be on 127.0.0.0/8 (or ::1).

Kit processes: the test cluster's components (its PID files, their children, and the component
names), the ``scalelab run`` process and its children (Locust), and the docker-proxy processes
that publish the compose arm's port. Not the kit's, so not checked (listed in the output): the
Docker daemon and its own containerd, and any other service of the machine (sshd, resolvers...).
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
from livekit import free_port

from scalelab import safety
from scalelab.platforms import k8s_manifests as km
from scalelab.scenario import load_scenario
from scalelab.telemetry.store import new_run_id

REPO = Path(__file__).resolve().parents[2]
#: Component names as ``ss -p`` shows them (the kernel's 15-character ``comm``).
CLUSTER_NAMES = {"etcd", "kube-apiserver", "kube-controller", "kube-scheduler", "kubelet", "kube-proxy", "metrics-server"}
RUN_TIMEOUT_S = 240
SAMPLE_EVERY_S = 2.0

# A 30-second arm on each platform: long enough to list the sockets while everything runs.
PROBE_SCENARIO = textwrap.dedent("""\
    name: safety-probe
    description: Keeps every kit process alive for 30 s while its listening sockets are listed.
    duration_s: 30s
    seed: 3
    reference_cpu_budget: 1
    price_per_replica_hour: 1.0
    latency_objective_ms: 500
    workload: {work_ms: 5, warmup_s: 1, cpu_request: 0.1, cpu_limit: 0.2, memory_mb: 128, timeout_s: 10}
    load: {mode: open, profile: steady, baseline: 2}
    arms:
      compose:
        platform: compose
        replicas: 1
        scaler: {type: fixed}
      kubernetes:
        platform: kubernetes
        replicas: 1
        scaler: {type: hpa, min_replicas: 1, max_replicas: 2, target_cpu_pct: 50, sync_period_s: 5s, downscale_stabilization_s: 30s}
""")


# --- processes ---------------------------------------------------------------------------------


def _children() -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        ppid = int(text.rsplit(")", 1)[1].split()[1])
        out.setdefault(ppid, []).append(int(stat.parent.name))
    return out


def _with_descendants(pids: set[int]) -> set[int]:
    children, seen, todo = _children(), set(), list(pids)
    while todo:
        pid = todo.pop()
        if pid not in seen:
            seen.add(pid)
            todo.extend(children.get(pid, []))
    return seen


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().split("\0")
    except OSError:
        return []


def _docker_proxy_pids(port: int) -> set[int]:
    out = set()
    for cmd in Path("/proc").glob("[0-9]*/cmdline"):
        args = _cmdline(int(cmd.parent.name))
        if args and args[0].endswith("docker-proxy") and "-host-port" in args and args[args.index("-host-port") + 1] == str(port):
            out.add(int(cmd.parent.name))
    return out


def _split(listeners: list[safety.Listener], kit_pids: set[int], kit_names: set[str]) -> tuple[set[safety.Listener], set[safety.Listener]]:
    """(the kit's sockets, everyone else's)."""
    ours = {s for s in listeners if any(pid in kit_pids or name in kit_names for name, pid in s.processes)}
    return ours, set(listeners) - ours


def _report(title: str, ours: set[safety.Listener], others: set[safety.Listener]) -> str:
    lines = [f"{title}: {len(ours)} kit socket(s)"]
    lines += [f"  {'ok ' if safety.is_loopback(s.address) else 'BAD'} {s}" for s in sorted(ours, key=lambda s: (s.port, s.address))]
    lines.append("  not the kit's (machine services, the Docker daemon), not checked:")
    lines += [f"      {s}" for s in sorted(others, key=lambda s: (s.port, s.address))]
    return "\n".join(lines)


# --- the test cluster ----------------------------------------------------------------------------


@pytest.mark.cluster
def test_the_test_cluster_listens_only_on_loopback(root_user, test_cluster_processes, capsys) -> None:
    components = test_cluster_processes
    ours, others = _split(safety.listening_sockets(), _with_descendants(set(components.values())), CLUSTER_NAMES)
    with capsys.disabled():
        print("\n" + _report(f"test cluster ({', '.join(sorted(components))})", ours, others))
    bad = [str(s) for s in ours if not safety.is_loopback(s.address)]
    assert not bad, f"kit sockets beyond loopback: {bad}"
    held = {(name, s.port) for s in ours for name, _ in s.processes}
    for name, port in (("etcd", 2379), ("kube-apiserver", 6443), ("kubelet", 10250)):
        assert (name, port) in held, f"{name} is not listening on {port}: is this the test cluster? {sorted(held)}"
    # NodePorts: kube-proxy answers them only for 127.0.0.0/8 (nodePortAddresses), nothing listens.
    nat = subprocess.run(["iptables", "-t", "nat", "-S", "KUBE-SERVICES"], capture_output=True, text=True, timeout=30, check=True).stdout
    jumps = [r.split() for r in nat.splitlines() if "-j KUBE-NODEPORTS" in r]
    loopback = ipaddress.ip_network("127.0.0.0/8")
    assert jumps and all("-d" in r and ipaddress.ip_network(r[r.index("-d") + 1]).subnet_of(loopback) for r in jumps), jumps


# --- Pod Security admission ------------------------------------------------------------------------


def _psa_warnings(resp) -> list[str]:
    """The Pod Security warnings of a response (``Warning: would violate PodSecurity ...``)."""
    return [w for w in resp.headers.getlist("Warning") if "PodSecurity" in w]


@pytest.mark.cluster
def test_rendered_manifests_pass_restricted_admission(test_cluster, capsys) -> None:
    from kubernetes import client, dynamic
    from kubernetes.dynamic.exceptions import ForbiddenError

    scenario = load_scenario("ci-spike", cpu_budget=1)
    m = km.render(scenario, "kubernetes-hpa", new_run_id(scenario.name, "kubernetes-hpa"), k8s_dir=REPO / "k8s")
    ns = f"scalelab-psa-{uuid.uuid4().hex[:6]}"
    # The kit's namespace labels, except managed-by: this namespace is the test's, not a run's.
    labels = {k: v for k, v in m.namespace["metadata"]["labels"].items() if k.startswith("pod-security.")}
    assert labels.get("pod-security.kubernetes.io/enforce") == "restricted"
    api = test_cluster.api_client()
    core = client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": ns, "labels": {**labels, "app.kubernetes.io/part-of": "scalelab-test"}}}, _request_timeout=30)
    results = []
    try:
        dyn = dynamic.DynamicClient(api)
        for doc in (m.deployment, m.service, m.hpa):
            doc = {**doc, "metadata": {**doc["metadata"], "namespace": ns}}
            resource = dyn.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
            resp = dyn.server_side_apply(resource, body=doc, namespace=ns, field_manager="scalelab-safety", force_conflicts=True, dry_run="All", serialize=False)
            results.append(f"server-side apply --dry-run {doc['kind']} {doc['metadata']['name']}: HTTP {resp.status}, warnings {_psa_warnings(resp)}")
            assert resp.status in (200, 201) and not _psa_warnings(resp), results[-1]

        pods = dyn.resources.get(api_version="v1", kind="Pod")
        (_, meta, spec) = next(safety.pod_specs(m.deployment))
        metrics = [d for d in km.load_yaml_docs(REPO / "k8s" / "metrics-server.yaml") if d["kind"] == "Deployment"][0]
        (_, ms_meta, ms_spec) = next(safety.pod_specs(metrics))
        # The metrics-server pod outside kube-system: without its service account and priority
        # class (other admission plugins check those), with every security field as shipped.
        ms_spec = {k: v for k, v in ms_spec.items() if k not in ("serviceAccountName", "priorityClassName")}
        for name, pod_meta, pod_spec in (("ai-agent", meta, spec), ("metrics-server", ms_meta, ms_spec)):
            pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"psa-{name}", "labels": pod_meta.get("labels") or {}}, "spec": pod_spec}
            resp = dyn.create(pods, body=pod, namespace=ns, dry_run="All", serialize=False)
            results.append(f"create --dry-run Pod from the {name} template: HTTP {resp.status}, warnings {_psa_warnings(resp)}")
            assert resp.status == 201 and not _psa_warnings(resp), results[-1]

        # A pod without the hardening must be refused, or this test proves nothing.
        bare = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "psa-bare"}, "spec": {"containers": [{"name": "c", "image": spec["containers"][0]["image"]}]}}
        with pytest.raises(ForbiddenError) as refused:
            dyn.create(pods, body=bare, namespace=ns, dry_run="All")
        message = json.loads(refused.value.body)["message"]
        results.append(f"create --dry-run bare Pod: HTTP {refused.value.status}: {message}")
        assert 'violates PodSecurity "restricted:' in message, message
        for rule in ("allowPrivilegeEscalation", "runAsNonRoot", "seccompProfile", "capabilities"):
            assert rule in message, (rule, message)
    finally:
        with capsys.disabled():
            print(f"\nPod Security admission in namespace {ns} ({labels}):\n  " + "\n  ".join(results))
        core.delete_namespace(ns, _request_timeout=30)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(n.metadata.name == ns for n in core.list_namespace(_request_timeout=30).items):
            time.sleep(1)
        api.close()


# --- running arms --------------------------------------------------------------------------------


def _watch_run(args: list[str], tmp_path: Path, env: dict[str, str], kit_pids, kit_names: set[str]) -> tuple[set, set, str]:
    """Run ``scalelab run`` and list the sockets every SAMPLE_EVERY_S until it ends: (kit's, others', output)."""
    scenario = tmp_path / "safety-probe.yaml"
    scenario.write_text(PROBE_SCENARIO)
    log = tmp_path / "run.log"
    cmd = [sys.executable, "-m", "scalelab", "run", str(scenario), *args, "--runs-dir", str(tmp_path / "runs")]
    ours: set[safety.Listener] = set()
    others: set[safety.Listener] = set()
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env={**os.environ, **env, "PYTHONUNBUFFERED": "1"}, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + RUN_TIMEOUT_S
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            pids = _with_descendants({proc.pid} | set(kit_pids()))
            o, t = _split(safety.listening_sockets(), pids, kit_names)
            ours |= o
            others |= t
            time.sleep(SAMPLE_EVERY_S)
    finally:
        if proc.poll() is None:
            proc.terminate()  # SIGTERM: the runner tears its arm down
            proc.wait(timeout=120)
    text = log.read_text()
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{text[-3000:]}"
    return ours, others, text


@pytest.mark.docker
@pytest.mark.slow
def test_a_running_compose_arm_listens_only_on_loopback(root_user, scalelab_images, tmp_path, capsys) -> None:
    port = free_port()
    ours, others, _ = _watch_run(["--arm", "compose", "--cpu-budget", "1"], tmp_path, {"SCALELAB_PORT": str(port)}, lambda: _docker_proxy_pids(port), set())
    with capsys.disabled():
        print("\n" + _report(f"compose arm (front door published on port {port})", ours, others))
    bad = [str(s) for s in ours if not safety.is_loopback(s.address)]
    assert not bad, f"kit sockets beyond loopback: {bad}"
    published = [s for s in ours if s.port == port]
    assert published, f"no docker-proxy socket seen for the published port {port} (userland proxy disabled?)"


@pytest.mark.cluster
@pytest.mark.slow
def test_a_running_kubernetes_arm_listens_only_on_loopback(root_user, test_cluster, test_cluster_processes, tmp_path, capsys) -> None:
    components = test_cluster_processes
    args = ["--arm", "kubernetes", "--cpu-budget", "1", "--kubeconfig", str(test_cluster.kubeconfig), "--context", test_cluster.context]
    ours, others, _ = _watch_run(args, tmp_path, {}, lambda: components.values(), CLUSTER_NAMES)
    with capsys.disabled():
        print("\n" + _report("Kubernetes arm on the test cluster", ours, others))
    bad = [str(s) for s in ours if not safety.is_loopback(s.address)]
    assert not bad, f"kit sockets beyond loopback: {bad}"
    assert {6443, 10250, 2379} <= {s.port for s in ours}
