"""The students' manifests in ``k8s/``, rendered for one run of one scenario arm.

The YAML files are the source of truth (students read and apply them by hand in lab 03);
`render` reads them and patches a copy in memory: the run's namespace and labels, the replica
count, the sized CPU and memory, the workload's environment, and the HPA's bounds, target and
``behavior`` from the scenario's `HPAScaler`. Pure functions: no cluster access.
"""

from __future__ import annotations

import copy
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from scalelab.checkout import kit_path
from scalelab.errors import PreflightError
from scalelab.scenario import ArmRollout, Behavior, HPAScaler, ScalingRules, Scenario
from scalelab.versions import AGENT_IMAGE

__all__ = [
    "APP_LABEL",
    "MANAGED_BY",
    "POD_SECURITY_LABELS",
    "RUN_ID_LABEL",
    "SCALELAB_SELECTOR",
    "Manifests",
    "find_k8s_dir",
    "load_yaml_docs",
    "namespace_for",
    "label_value",
    "cpu_quantity",
    "behavior_spec",
    "render",
    "apply_rollout_settings",
    "write_rendered",
    "RENDERED_FILE",
]

#: The manifests a run applied, saved in its run directory.
RENDERED_FILE = "k8s-rendered.yaml"

LAB = "03-kind-cluster-and-hpa"
APP_LABEL = {"app.kubernetes.io/name": "ai-agent"}
MANAGED_BY = {"app.kubernetes.io/managed-by": "scalelab"}
RUN_ID_LABEL = "scalelab.io/run-id"
#: Every namespace the kit creates enforces the "restricted" Pod Security Standard (and warns and
#: audits against it): a pod the API server would reject on a hardened cluster fails here too.
POD_SECURITY_LABELS = {f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "warn", "audit")}
#: Label selector for everything scalelab created (used by ``scalelab down kubernetes``).
SCALELAB_SELECTOR = "app.kubernetes.io/managed-by=scalelab"
_BASE_FILES = ("deployment.yaml", "service.yaml", "hpa.yaml")


@dataclass(frozen=True)
class Manifests:
    """What `up` creates for one run, as plain API dicts (hpa is None for fixed/manual scalers)."""

    namespace: dict[str, Any]
    deployment: dict[str, Any]
    service: dict[str, Any]
    hpa: dict[str, Any] | None

    @property
    def ns(self) -> str:
        return str(self.namespace["metadata"]["name"])

    @property
    def node_port(self) -> int:
        return int(self.service["spec"]["ports"][0]["nodePort"])

    def documents(self) -> list[dict[str, Any]]:
        return [d for d in (self.namespace, self.deployment, self.service, self.hpa) if d is not None]


def find_k8s_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """``k8s/`` of the kit: the argument, ``$SCALELAB_K8S_DIR`` or the checkout's."""
    return kit_path("k8s", "SCALELAB_K8S_DIR", must_contain="deployment.yaml", explicit=explicit, lab=LAB)


def load_yaml_docs(path: Path) -> list[dict[str, Any]]:
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    except (OSError, yaml.YAMLError) as exc:
        raise PreflightError(f"cannot read {path}: {exc}", fix="restore the file from git (`git checkout -- k8s/`)", lab=LAB) from None
    return docs


def _one(path: Path, kind: str) -> dict[str, Any]:
    docs = [d for d in load_yaml_docs(path) if d.get("kind") == kind]
    if len(docs) != 1:
        raise PreflightError(f"{path} must hold exactly one {kind}, found {len(docs)}", fix="restore the file from git", lab=LAB)
    return docs[0]


def namespace_for(run_id: str) -> str:
    """``scalelab-<short run id>``: time of day and the random suffix of the run id."""
    match = re.match(r"^\d{8}-(\d{6})-.*-([0-9a-f]{4})$", run_id)
    short = f"{match.group(1)}-{match.group(2)}" if match else re.sub(r"[^a-z0-9-]", "-", run_id.lower())[-20:].strip("-")
    return f"scalelab-{short or 'run'}"


def label_value(text: str) -> str:
    """A valid label value: at most 63 characters of ``[a-z0-9A-Z._-]``, alphanumeric at both ends."""
    value = re.sub(r"[^A-Za-z0-9._-]", "-", text)[-63:]
    return value.strip("-._")


def cpu_quantity(cores: float) -> str:
    """Cores as a Kubernetes quantity in whole millicores, rounded up like the API server does:
    0.25 -> ``250m``, 0.0625 -> ``63m`` (at least 1m)."""
    return f"{max(1, math.ceil(round(cores * 1000, 6)))}m"


def _rules(rules: ScalingRules) -> dict[str, Any]:
    out: dict[str, Any] = {"selectPolicy": rules.select_policy}
    if rules.stabilization_window_s is not None:
        out["stabilizationWindowSeconds"] = rules.stabilization_window_s
    if rules.policies is not None:
        out["policies"] = [{"type": p.type, "value": p.value, "periodSeconds": p.period_s} for p in rules.policies]
    if rules.tolerance is not None:
        out["tolerance"] = str(rules.tolerance)
    return out


def behavior_spec(behavior: Behavior | None) -> dict[str, Any] | None:
    """The HPA ``spec.behavior`` for a scenario's `Behavior` (None keeps the legacy path)."""
    if behavior is None:
        return None
    out: dict[str, Any] = {}
    if behavior.scale_up is not None:
        out["scaleUp"] = _rules(behavior.scale_up)
    if behavior.scale_down is not None:
        out["scaleDown"] = _rules(behavior.scale_down)
    return out


def _labelled(doc: dict[str, Any], ns: str | None, labels: dict[str, str]) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    meta = out.setdefault("metadata", {})
    if ns is not None:
        meta["namespace"] = ns
    meta["labels"] = {**(meta.get("labels") or {}), **labels}
    return out


def _set_env(container: dict[str, Any], values: dict[str, str]) -> None:
    env = [e for e in container.get("env") or [] if e.get("name") not in values]
    env.extend({"name": k, "value": v} for k, v in values.items())
    container["env"] = env


def apply_rollout_settings(deployment: dict[str, Any], how: ArmRollout) -> None:
    """An arm's ``rollout:`` section into the Deployment (in place): strategy, readiness, preStop, grace, the agent's drain.

    Restricted-PSS safe: the preStop hook is the kubelet's own ``sleep`` action (no exec, no host).
    """
    spec = deployment["spec"]
    if how.strategy == "recreate":
        spec["strategy"] = {"type": "Recreate"}
    else:
        rolling = {k: v for k, v in (("maxSurge", how.max_surge), ("maxUnavailable", how.max_unavailable)) if v is not None}
        spec["strategy"] = {"type": "RollingUpdate", **({"rollingUpdate": rolling} if rolling else {})}
    if how.min_ready_s:
        spec["minReadySeconds"] = how.min_ready_s
    pod = spec["template"]["spec"]
    if how.grace_s is not None:
        pod["terminationGracePeriodSeconds"] = how.grace_s
    agent = next((c for c in pod["containers"] if c.get("name") == "ai-agent"), pod["containers"][0])
    if not how.readiness:
        agent.pop("readinessProbe", None)
    if how.pre_stop_s:
        agent["lifecycle"] = {"preStop": {"sleep": {"seconds": how.pre_stop_s}}}
    if not how.drain:
        _set_env(agent, {"AGENT_DRAIN": "0"})


def render(
    scenario: Scenario,
    arm_name: str,
    run_id: str,
    *,
    replicas: int | None = None,
    k8s_dir: str | os.PathLike[str] | None = None,
    image: str = AGENT_IMAGE,
) -> Manifests:
    """Namespace, Deployment, Service and (``hpa`` scalers only) HPA for one run of one arm."""
    folder = find_k8s_dir(k8s_dir)
    _, arm = scenario.arm(arm_name)
    ns = namespace_for(run_id)
    labels = {**MANAGED_BY, RUN_ID_LABEL: label_value(run_id), "scalelab.io/arm": label_value(arm_name)}
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": {**labels, **POD_SECURITY_LABELS}}}

    deployment = _labelled(_one(folder / "deployment.yaml", "Deployment"), ns, labels)
    spec = deployment["spec"]
    spec["replicas"] = arm.replicas if replicas is None else replicas
    template_meta = spec["template"].setdefault("metadata", {})
    template_meta["labels"] = {**(template_meta.get("labels") or {}), **labels}
    containers = spec["template"]["spec"]["containers"]
    agent = next((c for c in containers if c.get("name") == "ai-agent"), containers[0])
    agent["image"] = image
    work = scenario.workload
    memory = f"{work.memory_mb}Mi"
    agent["resources"] = {
        "requests": {"cpu": cpu_quantity(work.cpu_request), "memory": memory},
        "limits": {"cpu": cpu_quantity(work.cpu_limit), "memory": memory},
    }
    _set_env(agent, {"AGENT_WORK_MS": f"{work.work_ms:g}", "AGENT_WARMUP_S": f"{work.warmup_s:g}"})
    if arm.rollout is not None:
        apply_rollout_settings(deployment, arm.rollout)

    service = _labelled(_one(folder / "service.yaml", "Service"), ns, labels)

    hpa = None
    if isinstance(arm.scaler, HPAScaler):
        scaler = arm.scaler
        hpa = _labelled(_one(folder / "hpa.yaml", "HorizontalPodAutoscaler"), ns, labels)
        hspec = hpa["spec"]
        hspec["scaleTargetRef"]["name"] = deployment["metadata"]["name"]
        hspec["minReplicas"] = scaler.min_replicas
        hspec["maxReplicas"] = scaler.max_replicas
        hspec["metrics"] = [
            {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": scaler.target_cpu_pct}}}
        ]
        behavior = behavior_spec(scaler.behavior)
        if behavior is None:
            hspec.pop("behavior", None)
        else:
            hspec["behavior"] = behavior
    return Manifests(namespace=namespace, deployment=deployment, service=service, hpa=hpa)


def write_rendered(manifests: Manifests, run_dir: str | os.PathLike[str]) -> Path:
    """Save what a run applies (Namespace, Deployment, Service, HPA) as one YAML file in the run directory."""
    path = Path(run_dir) / RENDERED_FILE
    header = f"# Applied by scalelab into namespace {manifests.ns}; rendered from k8s/*.yaml with the run's scenario.\n"
    path.write_text(header + yaml.safe_dump_all(manifests.documents(), sort_keys=False), encoding="utf-8")
    return path
