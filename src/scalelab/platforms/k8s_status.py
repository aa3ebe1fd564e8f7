"""Reading what a cluster reports, as pure functions on API JSON and kubelet text.

- kubelet resource metrics (``/api/v1/nodes/<node>/proxy/metrics/resource``, Prometheus text):
  cumulative ``container_cpu_usage_seconds_total`` turned into cores between our own samples,
  and ``container_memory_working_set_bytes``;
- HPA status: desired replicas, the utilisation the HPA saw, its conditions;
- pods: placement rows, readiness, and the failures a class hits (image not loaded, CPU requests
  missing, unschedulable), each explained with the fix;
- events: the HPA's ``SuccessfulRescale`` and warnings, once each.

Everything takes plain dicts (``kubectl get -o json`` shape), so tests run on recorded JSON.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from scalelab.errors import PlatformError

__all__ = [
    "MetricSample",
    "parse_prometheus",
    "ContainerUsage",
    "container_usage",
    "CpuRates",
    "HpaStatus",
    "hpa_status",
    "condition_events",
    "node_ready",
    "node_events",
    "PodView",
    "pod_view",
    "diagnose_pods",
    "diagnose_hpa",
    "EventLog",
]

LAB = "03-kind-cluster-and-hpa"

# --- kubelet resource metrics --------------------------------------------------------------------

_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+(-?\d+))?\s*$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class MetricSample:
    name: str
    labels: dict[str, str]
    value: float
    timestamp_ms: int | None


def parse_prometheus(text: str) -> list[MetricSample]:
    """Samples of a Prometheus text exposition (comments and malformed lines skipped)."""
    out: list[MetricSample] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if not match:
            continue
        name, raw_labels, value, ts = match.groups()
        try:
            number = float(value)
        except ValueError:
            continue
        labels = {k: v.replace('\\"', '"').replace("\\\\", "\\") for k, v in _LABEL.findall(raw_labels or "")}
        out.append(MetricSample(name, labels, number, int(ts) if ts else None))
    return out


@dataclass(frozen=True)
class ContainerUsage:
    """One container's counters as the kubelet reported them."""

    cpu_seconds: float | None = None
    cpu_timestamp_ms: int | None = None
    memory_bytes: float | None = None


def container_usage(text: str, namespace: str) -> dict[tuple[str, str], ContainerUsage]:
    """``{(pod, container): ContainerUsage}`` for the containers of ``namespace``."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for s in parse_prometheus(text):
        if s.labels.get("namespace") != namespace or "container" not in s.labels:
            continue
        key = (s.labels.get("pod", ""), s.labels["container"])
        if s.name == "container_cpu_usage_seconds_total":
            found.setdefault(key, {}).update(cpu_seconds=s.value, cpu_timestamp_ms=s.timestamp_ms)
        elif s.name == "container_memory_working_set_bytes":
            found.setdefault(key, {}).update(memory_bytes=s.value)
    return {k: ContainerUsage(**v) for k, v in found.items()}


class CpuRates:
    """Cores per pod from cumulative CPU seconds, between consecutive samples of each container.

    The kubelet stamps each counter with the time cAdvisor read it; the rate uses those stamps
    (or ``now_s`` if a line has none). When a counter has not moved on since the previous
    sample, the last rate is kept and counted in ``held``; ``intervals_s`` collects the real
    spacing of the counter updates, so a run can say what resolution it actually had.
    """

    def __init__(self) -> None:
        self._prev: dict[tuple[str, str], tuple[float, float]] = {}
        self._rate: dict[tuple[str, str], float] = {}
        self.intervals_s: list[float] = []
        self.held = 0

    def update(self, usage: Mapping[tuple[str, str], ContainerUsage], now_s: float) -> dict[str, float]:
        """Feed one sample (all nodes); returns ``{pod: cores}`` for pods with a known rate."""
        for key, u in usage.items():
            if u.cpu_seconds is None:
                continue
            t = u.cpu_timestamp_ms / 1000.0 if u.cpu_timestamp_ms is not None else now_s
            prev = self._prev.get(key)
            if prev is not None:
                dt = t - prev[1]
                dc = u.cpu_seconds - prev[0]
                if dt > 0 and dc >= 0:
                    self._rate[key] = dc / dt
                    self.intervals_s.append(dt)
                elif dt <= 0:
                    self.held += 1
                    continue
                else:  # dc < 0: the container restarted; start over from this sample
                    self._rate.pop(key, None)
            self._prev[key] = (u.cpu_seconds, t)
        for key in list(self._prev):
            if key not in usage:  # pod gone
                self._prev.pop(key, None)
                self._rate.pop(key, None)
        pods: dict[str, float] = {}
        for (pod, _container), rate in self._rate.items():
            pods[pod] = pods.get(pod, 0.0) + rate
        return pods


# --- HPA -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HpaStatus:
    current_replicas: int | None
    desired_replicas: int | None
    util_pct: int | None
    conditions: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # type -> (status, reason, message)

    @property
    def target_unknown(self) -> bool:
        return self.util_pct is None


def hpa_status(hpa: Mapping[str, Any]) -> HpaStatus:
    """Fields of an autoscaling/v2 HPA's status (``kubectl get hpa -o json`` shape)."""
    status = hpa.get("status") or {}
    util = None
    for metric in status.get("currentMetrics") or []:
        res = metric.get("resource") or {}
        if metric.get("type") == "Resource" and res.get("name") == "cpu":
            util = (res.get("current") or {}).get("averageUtilization")
    conditions = {
        c["type"]: (str(c.get("status", "")), str(c.get("reason", "")), str(c.get("message", "")))
        for c in status.get("conditions") or []
        if "type" in c
    }
    return HpaStatus(status.get("currentReplicas"), status.get("desiredReplicas"), util, conditions)


def condition_events(prev: Mapping[str, tuple[str, str, str]], now: Mapping[str, tuple[str, str, str]]) -> list[dict[str, Any]]:
    """``hpa_condition`` events for conditions whose status or reason changed."""
    out = []
    for ctype, (status, reason, message) in sorted(now.items()):
        old = prev.get(ctype)
        if old is None or old[:2] != (status, reason):
            out.append({"kind": "hpa_condition", "source": "hpa", "detail": f"{ctype}={status} {reason}: {message}".strip()})
    return out


def node_ready(nodes: Iterable[Mapping[str, Any]]) -> dict[str, tuple[str, str]]:
    """Node name -> (status of its ``Ready`` condition: True, False or Unknown, reason)."""
    out = {}
    for node in nodes:
        cond: Mapping[str, Any] = next((c for c in (node.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"), {})
        out[str((node.get("metadata") or {}).get("name"))] = (str(cond.get("status") or "Unknown"), str(cond.get("reason") or ""))
    return out


def node_events(prev: Mapping[str, tuple[str, str]], now: Mapping[str, tuple[str, str]]) -> list[dict[str, Any]]:
    """``node`` events when a node's Ready condition leaves True (``... down``) or comes back (``... ready``); the
    first look sets the baseline. The detail ends with the state, as Swarm's node events do (`scalelab.faults.measure`)."""
    out = []
    for name, (status, reason) in sorted(now.items()):
        old = prev.get(name)
        if old is None or (old[0] == "True") == (status == "True"):
            continue
        state = "ready" if status == "True" else "down"
        out.append({"kind": "node", "source": "kubernetes", "detail": f"{name} (Ready={status} {reason}) {state}".replace(" )", ")")})
    return out


def diagnose_hpa(hpa: Mapping[str, Any]) -> PlatformError | None:
    """A configuration error the HPA reports that will not go away by waiting, else None."""
    status = hpa_status(hpa)
    active = status.conditions.get("ScalingActive")
    if not active or active[0] != "False":
        return None
    _, reason, message = active
    name = (hpa.get("metadata") or {}).get("name", "ai-agent")
    if "missing request for cpu" in message:
        return PlatformError(
            f"HPA {name} shows target <unknown>: {reason}: {message}",
            fix="every container of the Deployment needs resources.requests.cpu (k8s/deployment.yaml); utilisation is a percent of it",
            lab=LAB,
        )
    if reason == "FailedGetResourceMetric" and "could not find the requested resource" in message:
        return PlatformError(
            f"HPA {name} cannot read CPU metrics: {message}",
            fix="metrics.k8s.io is not served: install metrics-server (`scalelab cluster up` does) and check `kubectl get apiservice v1beta1.metrics.k8s.io`",
            lab=LAB,
        )
    return None


# --- pods ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PodView:
    name: str
    node: str
    phase: str
    ready: bool
    deleting: bool
    waiting: tuple[tuple[str, str], ...]  # (reason, message) of waiting containers
    unschedulable: str  # scheduler message when PodScheduled=False, else ""
    restarts: int
    #: the agent's last termination ("Error, exit 137") and how long it stayed down before its
    #: current start (the kubelet's restart back-off, CrashLoopBackOff), when it has restarted
    last_exit: str = ""
    down_s: float | None = None


def pod_view(pod: Mapping[str, Any]) -> PodView:
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    ready = (conditions.get("Ready") or {}).get("status") == "True"
    sched = conditions.get("PodScheduled") or {}
    unsched = str(sched.get("message", "")) if sched.get("status") == "False" else ""
    waiting = []
    restarts = 0
    last_exit, down_s = "", None
    for cs in (status.get("containerStatuses") or []) + (status.get("initContainerStatuses") or []):
        restarts += int(cs.get("restartCount") or 0)
        w = (cs.get("state") or {}).get("waiting")
        if w and w.get("reason"):
            waiting.append((str(w["reason"]), str(w.get("message", ""))))
        done = (cs.get("lastState") or {}).get("terminated")
        if done and not last_exit:
            last_exit = f"{done.get('reason') or 'terminated'}, exit {done.get('exitCode')}"
            down_s = _seconds_between(done.get("finishedAt"), ((cs.get("state") or {}).get("running") or {}).get("startedAt"))
    return PodView(
        name=str(meta.get("name", "")),
        node=str(spec.get("nodeName") or ""),
        phase=str(status.get("phase", "Unknown")),
        ready=ready,
        deleting=bool(meta.get("deletionTimestamp")),
        waiting=tuple(waiting),
        unschedulable=unsched,
        restarts=restarts,
        last_exit=last_exit,
        down_s=down_s,
    )


def _seconds_between(start: object, end: object) -> float | None:
    """Seconds between two RFC 3339 API timestamps (None when either is missing)."""
    from datetime import datetime

    try:
        a = datetime.fromisoformat(str(start).replace("Z", "+00:00"))
        b = datetime.fromisoformat(str(end).replace("Z", "+00:00"))
    except ValueError:
        return None
    return round((b - a).total_seconds(), 3)


_IMAGE_REASONS = ("ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName")


def diagnose_pods(pods: Iterable[Mapping[str, Any]], *, image: str, kind_cluster: str | None = None) -> PlatformError | None:
    """The first pod failure that waiting will not fix, explained with its fix; else None."""
    for pod in pods:
        view = pod_view(pod)
        for reason, message in view.waiting:
            if reason in _IMAGE_REASONS:
                wanted = _pod_image(pod) or image
                load = f"kind load docker-image {wanted} --name {kind_cluster}" if kind_cluster else (
                    f"docker save {wanted} | ctr --namespace=k8s.io images import -   (on every node; test cluster: tests/cluster/cluster.sh load {wanted})"
                )
                return PlatformError(
                    f"pod {view.name} cannot start: {reason}: the node has no image {wanted} and cannot pull it (no registry, or not loaded); kubelet: {message[-160:]}",
                    fix=f"build the image (`scalelab image`), then load it into the cluster: {load}",
                    lab=LAB,
                )
            if reason == "CrashLoopBackOff":
                return PlatformError(
                    f"pod {view.name} keeps crashing (CrashLoopBackOff, {view.restarts} restarts)",
                    fix=f"read its log: kubectl -n {(pod.get('metadata') or {}).get('namespace', '')} logs {view.name} --previous",
                    lab=LAB,
                )
            if reason in ("CreateContainerConfigError", "CreateContainerError"):
                return PlatformError(f"pod {view.name} cannot start: {reason}: {message[:300]}", fix="check the Deployment spec in k8s/deployment.yaml", lab=LAB)
        if view.unschedulable and ("Insufficient" in view.unschedulable or "didn't match" in view.unschedulable):
            return PlatformError(
                f"pod {view.name} cannot be scheduled: {view.unschedulable[:300]}",
                fix="the nodes lack room for the CPU/memory requests: lower --cpu-budget or max_replicas, or add nodes",
                lab=LAB,
            )
    return None


def _pod_image(pod: Mapping[str, Any]) -> str:
    containers = (pod.get("spec") or {}).get("containers") or []
    return str(containers[0].get("image", "")) if containers else ""


# --- events --------------------------------------------------------------------------------------

_NEW_SIZE = re.compile(r"New size:\s*(\d+)")


#: Warnings that say nothing about scaling (the test cluster runs without cluster DNS).
_QUIET_REASONS = frozenset({"MissingClusterDNS", "DNSConfigForming"})


class EventLog:
    """Turns repeated event lists into run events: every ``SuccessfulRescale`` occurrence (by
    count), each other Warning once (the first time its event object appears)."""

    def __init__(self) -> None:
        self._seen: set[tuple[str, int]] = set()

    def prime(self, events: Iterable[Mapping[str, Any]]) -> None:
        """Mark ``events`` as seen (what happened while the platform came up)."""
        self.new(events)

    def new(self, events: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        out = []
        ordered = sorted(events, key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""))
        for ev in ordered:
            if ev.get("reason") in _QUIET_REASONS or _readiness_during_start(ev):
                continue
            meta = ev.get("metadata") or {}
            count = int(ev.get("count") or (ev.get("series") or {}).get("count") or 1)
            key = (str(meta.get("uid") or meta.get("name")), count if ev.get("reason") == "SuccessfulRescale" else 1)
            if key in self._seen:
                continue
            self._seen.add(key)
            row = _event_row(ev)
            if row is not None:
                out.append(row)
        return out


def _readiness_during_start(ev: Mapping[str, Any]) -> bool:
    """Readiness probe failures: the cold start, already recorded as replica_start/replica_ready."""
    return ev.get("reason") == "Unhealthy" and str(ev.get("message", "")).startswith("Readiness probe failed")


def _event_row(ev: Mapping[str, Any]) -> dict[str, Any] | None:
    reason = str(ev.get("reason", ""))
    message = str(ev.get("message") or ev.get("note") or "")
    obj = ev.get("involvedObject") or ev.get("regarding") or {}
    if reason == "SuccessfulRescale":
        match = _NEW_SIZE.search(message)
        return {"kind": "hpa_rescale", "replicas": int(match.group(1)) if match else None, "source": "hpa", "detail": message}
    if ev.get("type") == "Warning":
        return {"kind": "note", "replicas": None, "source": f"{obj.get('kind', '')}/{obj.get('name', '')}", "detail": f"{reason}: {message}"[:500]}
    return None
