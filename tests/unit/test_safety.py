"""The safety suite, hermetic half: every manifest and compose service the kit ships is held to
the hardening rules (docs/security.md), and the checkers themselves catch each violation.

The live half (real admission, real listening sockets) is tests/integration/test_safety_live.py.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from scalelab import safety
from scalelab.platforms import k8s_manifests as km
from scalelab.scenario import builtin_scenarios, load_scenario

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
RUN_ID = "20261123-153000-classroom-spike-kubernetes-hpa-1a2b"


def _shipped_pods() -> list[tuple[str, dict, dict]]:
    out = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            for name, meta, spec in safety.pod_specs(doc or {}):
                out.append((f"{path.name}: {name}", meta, spec))
    return out


def _kubernetes_arms() -> list[tuple[str, str]]:
    return [(name, arm_name) for name in sorted(builtin_scenarios()) for arm_name, arm in load_scenario(name, cpu_budget=2).arms.items() if arm.platform == "kubernetes"]


# --- Kubernetes: the restricted Pod Security Standard ---------------------------------------------


def test_the_shipped_manifests_hold_pods() -> None:
    names = [n for n, _, _ in _shipped_pods()]
    assert "deployment.yaml: Deployment ai-agent" in names and "metrics-server.yaml: Deployment metrics-server" in names


@pytest.mark.parametrize("name,meta,spec", _shipped_pods(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_shipped_pod_template_is_restricted(name: str, meta: dict, spec: dict) -> None:
    assert safety.restricted_violations(spec, meta=meta) == [], name


@pytest.mark.parametrize("scenario,arm", _kubernetes_arms())
def test_every_rendered_run_is_restricted_in_a_restricted_namespace(scenario: str, arm: str) -> None:
    m = km.render(load_scenario(scenario, cpu_budget=2), arm, RUN_ID, k8s_dir=K8S)
    labels = m.namespace["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert labels["pod-security.kubernetes.io/warn"] == "restricted"
    pods = [p for doc in m.documents() for p in safety.pod_specs(doc)]
    assert len(pods) == 1
    _, meta, spec = pods[0]
    assert safety.restricted_violations(spec, meta=meta) == []
    assert spec["automountServiceAccountToken"] is False  # the agent never calls the API
    (agent,) = spec["containers"]
    limits = agent["resources"]["limits"]
    assert limits["cpu"] and limits["memory"], "CPU and memory limits"
    # the one writable path is an emptyDir, bounded like the compose tmpfs
    (mount,) = agent["volumeMounts"]
    (vol,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    assert mount["mountPath"] == "/tmp" and vol["emptyDir"]["sizeLimit"]


def test_hardening_keeps_the_probes_and_ports() -> None:
    (dep,) = [d for d in yaml.safe_load_all((K8S / "deployment.yaml").read_text()) if d]
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["ports"] == [{"name": "http", "containerPort": 8000}]  # unprivileged port: no NET_BIND_SERVICE
    assert dep["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == 65532


def _compliant_pod() -> dict:
    (dep,) = [d for d in yaml.safe_load_all((K8S / "deployment.yaml").read_text()) if d]
    return dep["spec"]["template"]["spec"]


def _c0(s: dict) -> dict:
    return s["containers"][0]["securityContext"]


#: rule -> (how to break a compliant pod, what the checker must say)
BREAKAGES = {
    "hostNetwork": (lambda s: s.update(hostNetwork=True), "spec.hostNetwork"),
    "hostPID": (lambda s: s.update(hostPID=True), "spec.hostPID"),
    "privileged": (lambda s: _c0(s).update(privileged=True), "privileged must not be true"),
    "allowPrivilegeEscalation": (lambda s: _c0(s).pop("allowPrivilegeEscalation"), "allowPrivilegeEscalation must be false"),
    "runAsNonRoot": (lambda s: s["securityContext"].pop("runAsNonRoot"), "runAsNonRoot must be true"),
    "runAsNonRoot false": (lambda s: s["securityContext"].update(runAsNonRoot=False), "runAsNonRoot must not be false"),
    "probe host": (lambda s: s["containers"][0]["livenessProbe"]["httpGet"].update(host="10.0.0.1"), "livenessProbe must not set a host"),
    "runAsUser": (lambda s: _c0(s).update(runAsUser=0), "runAsUser must not be 0"),
    "seccomp missing": (lambda s: s["securityContext"].pop("seccompProfile"), "seccompProfile.type must be RuntimeDefault"),
    "seccomp unconfined": (lambda s: _c0(s).update(seccompProfile={"type": "Unconfined"}), "seccompProfile must not be Unconfined"),
    "capabilities.drop": (lambda s: _c0(s).pop("capabilities"), "capabilities.drop must include ALL"),
    "capabilities.add": (lambda s: _c0(s)["capabilities"].update(add=["NET_ADMIN"]), "capabilities.add may hold only"),
    "hostPort": (lambda s: s["containers"][0]["ports"][0].update(hostPort=8000), "hostPort 8000"),
    "hostPath": (lambda s: s["volumes"].append({"name": "h", "hostPath": {"path": "/"}}), "type hostPath is not allowed"),
    "readOnlyRootFilesystem": (lambda s: _c0(s).update(readOnlyRootFilesystem=False), "readOnlyRootFilesystem must be true"),
    "procMount": (lambda s: _c0(s).update(procMount="Unmasked"), "procMount must be Default"),
    "sysctls": (lambda s: s["securityContext"].update(sysctls=[{"name": "net.ipv4.ip_forward", "value": "1"}]), "not a safe sysctl"),
    "seLinuxOptions": (lambda s: s["securityContext"].update(seLinuxOptions={"user": "root"}), "seLinuxOptions"),
    "initContainers": (lambda s: s.update(initContainers=[{"name": "init", "image": "x:1"}]), "initContainer init: allowPrivilegeEscalation"),
}


@pytest.mark.parametrize("rule", sorted(BREAKAGES))
def test_the_checker_catches_each_violation(rule: str) -> None:
    spec = copy.deepcopy(_compliant_pod())
    assert safety.restricted_violations(spec) == []
    breaks, says = BREAKAGES[rule]
    breaks(spec)
    found = safety.restricted_violations(spec)
    assert any(says in f for f in found), found


def test_a_bare_pod_breaks_every_restricted_rule() -> None:
    found = safety.restricted_violations({"containers": [{"name": "c", "image": "x:1"}]})
    for rule in ("allowPrivilegeEscalation", "runAsNonRoot", "seccompProfile", "capabilities.drop", "readOnlyRootFilesystem"):
        assert any(rule in f for f in found), (rule, found)
    bad_annotation = {"annotations": {"container.apparmor.security.beta.kubernetes.io/c": "unconfined"}}
    assert any("AppArmor" in f for f in safety.restricted_violations(_compliant_pod(), meta=bad_annotation))


def test_pod_specs_finds_templates_of_every_workload_kind() -> None:
    pod = {"containers": []}
    assert list(safety.pod_specs({"kind": "Service", "spec": {}})) == []
    assert [s for _, _, s in safety.pod_specs({"kind": "Pod", "metadata": {"name": "p"}, "spec": pod})] == [pod]
    cron = {"kind": "CronJob", "spec": {"jobTemplate": {"spec": {"template": {"spec": pod}}}}}
    assert [s for _, _, s in safety.pod_specs(cron)] == [pod]


# --- kind: the API server and the NodePort on loopback ------------------------------------------------


def test_kind_publishes_only_on_loopback() -> None:
    (cluster,) = [d for d in yaml.safe_load_all((K8S / "kind-cluster.yaml").read_text()) if d]
    assert cluster["networking"]["apiServerAddress"] == "127.0.0.1"
    for node in cluster["nodes"]:
        for mapping in node.get("extraPortMappings") or []:
            assert mapping["listenAddress"] == "127.0.0.1", mapping


# --- compose -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose_services() -> dict:
    return yaml.safe_load((ROOT / "compose" / "compose.yaml").read_text())["services"]


def test_every_compose_service_is_hardened(compose_services: dict) -> None:
    assert set(compose_services) == {"ai-agent", "ai-agent-weak", "lb"}  # ai-agent-weak: unequal replicas (lab 07)
    # Every compose or stack file under compose/ (a Swarm stack file added later is held to the same rules).
    for path in sorted((ROOT / "compose").glob("*.y*ml")):
        for name, service in (yaml.safe_load(path.read_text()).get("services") or {}).items():
            assert safety.compose_violations(name, service) == [], path.name


COMPOSE_BREAKAGES = {
    "user": lambda s: s.update(user="0:0"),
    "read_only": lambda s: s.pop("read_only"),
    "cap_drop": lambda s: s.update(cap_drop=["NET_RAW"]),
    "cap_add": lambda s: s.update(cap_add=["SYS_ADMIN"]),
    "privileged": lambda s: s.update(privileged=True),
    "no-new-privileges": lambda s: s.update(security_opt=[]),
    "CPU limit": lambda s: s.pop("cpus"),
    "memory limit": lambda s: s.pop("mem_limit"),
    "pids limit": lambda s: s.pop("pids_limit"),
    "network_mode": lambda s: s.update(network_mode="host"),
    "port 8080": lambda s: s.update(ports=["8080:8080"]),
    "port 0.0.0.0": lambda s: s.update(ports=["0.0.0.0:8080:8080"]),
    "port {": lambda s: s.update(ports=[{"target": 8080, "published": 8080}]),
    "Docker socket": lambda s: s.update(volumes=["/var/run/docker.sock:/var/run/docker.sock"]),
}


@pytest.mark.parametrize("rule", sorted(COMPOSE_BREAKAGES))
def test_the_compose_checker_catches_each_violation(compose_services: dict, rule: str) -> None:
    service = copy.deepcopy(compose_services["lb"])
    COMPOSE_BREAKAGES[rule](service)
    found = safety.compose_violations("lb", service)
    assert any(rule in f for f in found), found


def test_long_form_loopback_ports_pass(compose_services: dict) -> None:
    service = {**compose_services["lb"], "ports": [{"target": 8080, "published": 8080, "host_ip": "127.0.0.1"}]}
    assert safety.compose_violations("lb", service) == []


# --- build-time downloads -------------------------------------------------------------------------


def test_the_compose_plugin_wheel_is_pinned_by_hash() -> None:
    script = (ROOT / ".ci" / "docker.sh").read_text()
    assert "--require-hashes" in script
    assert script.count("--hash=sha256:") >= 1


def test_debootstrap_refuses_unsigned_archives() -> None:
    from scalelab import images

    argv = images.debootstrap_argv("/usr/sbin/debootstrap", ("python3",), Path("/c"), Path("/r"), "http://deb.debian.org/debian")
    assert "--force-check-gpg" in argv and f"--keyring={images.DEBIAN_KEYRING}" in argv


# --- listening sockets ----------------------------------------------------------------------------

SS = """\
LISTEN 0      4096       127.0.0.1:2379       0.0.0.0:*    users:(("etcd",pid=101,fd=8))
LISTEN 0      4096               *:6443             *:*    users:(("kube-apiserver",pid=102,fd=3))
LISTEN 0      4096           [::1]:10250         [::]:*    users:(("kubelet",pid=103,fd=20))
LISTEN 0      4096      127.0.0.53%lo:53        0.0.0.0:*    users:(("systemd-resolve",pid=5,fd=13))
LISTEN 0      4096       127.0.0.1:8080       0.0.0.0:*    users:(("docker-proxy",pid=7,fd=4),("docker-proxy",pid=8,fd=4))
LISTEN 0      128          0.0.0.0:22         0.0.0.0:*
"""


def test_parse_ss() -> None:
    found = safety.parse_ss(SS)
    assert [(s.address, s.port) for s in found] == [
        ("127.0.0.1", 2379), ("*", 6443), ("::1", 10250), ("127.0.0.53", 53), ("127.0.0.1", 8080), ("0.0.0.0", 22),
    ]  # fmt: skip
    assert found[0].processes == (("etcd", 101),)
    assert found[4].processes == (("docker-proxy", 7), ("docker-proxy", 8))
    assert found[5].processes == ()
    assert str(found[2]) == "[::1]:10250 (kubelet/103)"
    assert [safety.is_loopback(s.address) for s in found] == [True, False, True, True, True, False]


@pytest.mark.parametrize(
    "address,loopback",
    [("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("::ffff:127.0.0.1", True), ("localhost", True),
     ("*", False), ("0.0.0.0", False), ("::", False), ("10.0.0.5", False), ("", False)],
)  # fmt: skip
def test_is_loopback(address: str, loopback: bool) -> None:
    assert safety.is_loopback(address) is loopback
