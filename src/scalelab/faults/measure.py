"""What a fault cost, from a run's records: pure functions, no I/O.

Inputs are plain rows (dicts) of ``requests.csv``, ``events.csv`` and ``samples.csv``, all on
the run's time axis (``t_s`` since the load started; a request's ``t_s`` is when it completed).
For each ``fault`` event at ``t_f`` (up to the next fault, or the end of the run):

- failed requests by class: ``5xx`` (the front door answered 5xx: nginx 502/504, a replica's
  500), ``refused`` (connection refused), ``reset`` (connection reset or closed mid-request),
  ``timeout`` (no answer within the client timeout), ``dropped`` (the open-loop generator had
  too many requests in flight), ``other``;
- the error window: first to last failure that completed after ``t_f``;
- for a node loss, when the orchestrator marked the node down (the first ``node`` event saying
  ``down`` after ``t_f``: Swarm's heartbeat verdict, Kubernetes' node NotReady; not the moment the host stopped);
- time to recovery, four milestones after ``t_f``: a replacement started (``replica_start``),
  a replica became ready (``replica_ready``), the first 2xx served by a replacement (a replica
  that had not answered before the fault, or the victim itself coming back), and the sampled
  ready replicas back to what they were just before the fault;
- p99 and max latency of the requests that completed in the window (``t_f`` to the later of the
  last failure and the recovery, at least 5 s).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["ERROR_CLASSES", "classify", "FaultImpact", "fault_impacts", "impact_rows", "MIN_WINDOW_S", "Req", "Ev", "parse_requests",
           "parse_events", "parse_ready", "count_classes", "p99"]

ERROR_CLASSES = ("5xx", "refused", "reset", "timeout", "dropped", "other")
#: the latency window lasts at least this long after the fault
MIN_WINDOW_S = 5.0

_REPLICA = re.compile(r"replica=(\S+)")


def classify(status_code: int, error: str) -> str:
    """The class of one failed request from its status code and the load generator's error text."""
    text = (error or "").lower()
    if status_code >= 500:
        return "5xx"
    if text.startswith("dropped"):
        return "dropped"
    if "refused" in text:
        return "refused"
    if "timeout" in text or "timed out" in text:
        return "timeout"
    if any(word in text for word in ("reset", "broken pipe", "remotedisconnected", "connection closed", "eof", "badstatusline")):
        return "reset"
    return "other"


@dataclass(frozen=True)
class FaultImpact:
    t_fault_s: float
    kind: str
    replica: str
    requests: int
    failed: int
    by_class: dict[str, int] = field(default_factory=dict)
    first_error_s: float | None = None
    last_error_s: float | None = None
    #: seconds from fault to: a replacement started, a replica ready, first 2xx by a replacement, ready replicas back
    to_replacement_s: float | None = None
    to_ready_s: float | None = None
    to_first_2xx_s: float | None = None
    to_desired_s: float | None = None
    #: seconds from fault to the orchestrator marking a node down (node-loss faults; None otherwise)
    to_node_down_s: float | None = None
    ready_before: int | None = None
    ready_min: int | None = None
    window_s: float = MIN_WINDOW_S
    p99_ms: float | None = None
    max_ms: float | None = None
    #: in-place container restarts seen (``replica_restart`` events: Kubernetes)
    restarts: int = 0

    @property
    def error_window_s(self) -> float:
        """First to last failure (0 with one failure or none)."""
        if self.first_error_s is None or self.last_error_s is None:
            return 0.0
        return round(self.last_error_s - self.first_error_s, 3)


def _num(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(out) else out


def _ok(value: Any) -> bool:
    return str(value).strip() in ("1", "1.0", "True", "true")


def _after(t: float | None, t_f: float) -> float | None:
    return None if t is None else round(t - t_f, 3)


@dataclass(frozen=True)
class Req:
    """One row of requests.csv (``t`` = completion time)."""

    t: float
    ms: float
    ok: bool
    code: int
    replica: str
    error: str
    version: str = ""


@dataclass(frozen=True)
class Ev:
    t: float
    kind: str
    detail: str


def _text(value: Any) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def parse_requests(requests: Iterable[Mapping[str, Any]]) -> list[Req]:
    """requests.csv rows in completion order."""
    return sorted((Req(t, _num(r.get("response_ms")) or 0.0, _ok(r.get("ok")), int(_num(r.get("status_code")) or 0),
                       _text(r.get("replica")), _text(r.get("error")), _text(r.get("version")))
                   for r in requests if (t := _num(r.get("t_s"))) is not None), key=lambda r: r.t)


def parse_events(events: Iterable[Mapping[str, Any]]) -> list[Ev]:
    return sorted((Ev(_num(e.get("t_s")) or 0.0, _text(e.get("kind")), _text(e.get("detail"))) for e in events), key=lambda e: e.t)


def parse_ready(samples: Iterable[Mapping[str, Any]], sample_offset_s: float) -> list[tuple[float, float]]:
    """(time observed, ready replicas) per sample: a sample ``t_s = k`` was observed at ``k + sample_offset_s``."""
    return sorted(((_num(s.get("t_s")) or 0.0) + sample_offset_s, ready) for s in samples if (ready := _num(s.get("replicas_ready"))) is not None)


def count_classes(failed: Iterable[Req]) -> dict[str, int]:
    by_class = {c: 0 for c in ERROR_CLASSES}
    for r in failed:
        by_class[classify(r.code, r.error)] += 1
    return by_class


def p99(latencies_ms: Sequence[float]) -> float | None:
    """The 99th percentile (nearest rank) of sorted latencies; None when there are none."""
    return latencies_ms[max(1, math.ceil(0.99 * len(latencies_ms))) - 1] if latencies_ms else None


def fault_impacts(requests: Iterable[Mapping[str, Any]], events: Iterable[Mapping[str, Any]], samples: Iterable[Mapping[str, Any]] = (),
                  *, sample_offset_s: float = 0.4) -> list[FaultImpact]:
    """One `FaultImpact` per ``fault`` event, in time order.

    A sample ``t_s = k`` was observed at ``k + sample_offset_s`` (the run manifest's value).
    """
    reqs = parse_requests(requests)
    evs = parse_events(events)
    rows = parse_ready(samples, sample_offset_s)
    faults = [e for e in evs if e.kind == "fault"]
    out = []
    for i, fault in enumerate(faults):
        t_next = faults[i + 1].t if i + 1 < len(faults) else math.inf
        out.append(_impact(fault, t_next, reqs, evs, rows))
    return out


def _impact(fault: Ev, t_next: float, reqs: Sequence[Req], evs: Sequence[Ev], rows: Sequence[tuple[float, float]]) -> FaultImpact:
    t_f, detail = fault.t, fault.detail
    kind = detail.split(" ", 1)[0] if detail else ""
    match = _REPLICA.search(detail)
    victim = match.group(1) if match else ""
    span = [r for r in reqs if t_f <= r.t < t_next]
    failed = [r for r in span if not r.ok]
    by_class = count_classes(failed)

    def first_event(*kinds: str) -> float | None:
        return next((e.t for e in evs if e.kind in kinds and t_f <= e.t < t_next), None)

    # a replacement: a new replica (compose, swarm, a new pod), or the victim's container restarted in place (Kubernetes)
    t_start, t_ready = first_event("replica_start", "replica_restart"), first_event("replica_ready")
    restarts = sum(1 for e in evs if e.kind == "replica_restart" and t_f <= e.t < t_next)
    t_down = next((e.t for e in evs if e.kind == "node" and e.detail.endswith(" down") and t_f <= e.t < t_next), None)
    seen_before = {r.replica for r in reqs if r.t < t_f and r.ok and r.replica}

    def replacement(r: Req) -> bool:
        if not (r.ok and r.replica):
            return False
        if _same(r.replica, victim):  # the victim itself, back after a restart
            return t_ready is not None and r.t >= t_ready
        return r.replica not in seen_before

    t_2xx = next((r.t for r in span if replacement(r)), None)
    before = [ready for t, ready in rows if t < t_f]
    ready_before = int(before[-1]) if before else None
    after = [(t, ready) for t, ready in rows if t_f <= t < t_next]
    ready_min = int(min(ready for _, ready in after)) if after else None
    t_desired = None
    if ready_before is not None:
        dipped = next((j for j, (_, ready) in enumerate(after) if ready < ready_before), None)
        if dipped is not None:
            t_desired = next((t for t, ready in after[dipped:] if ready >= ready_before), None)
    last_err = failed[-1].t if failed else None
    end = max(t_f + MIN_WINDOW_S, last_err or t_f, t_desired or t_f)
    latencies = sorted(r.ms for r in span if r.t <= end)
    return FaultImpact(
        t_fault_s=t_f, kind=kind, replica=victim, requests=len(span), failed=len(failed), by_class=by_class,
        first_error_s=failed[0].t if failed else None, last_error_s=last_err,
        to_replacement_s=_after(t_start, t_f), to_ready_s=_after(t_ready, t_f), to_first_2xx_s=_after(t_2xx, t_f),
        to_desired_s=_after(t_desired, t_f), to_node_down_s=_after(t_down, t_f), ready_before=ready_before, ready_min=ready_min,
        window_s=round(end - t_f, 3), p99_ms=p99(latencies), max_ms=latencies[-1] if latencies else None, restarts=restarts,
    )


def _same(replica: str, victim: str) -> bool:
    """A compose replica answers with its 12-character container id; the event may name the full id."""
    return bool(victim) and bool(replica) and (replica == victim or victim.startswith(replica) or replica.startswith(victim))


def impact_rows(platform: str, impacts: Iterable[Any]) -> list[dict[str, Any]]:
    """Flat rows for a table: one per impact (a `FaultImpact`, or a rollout's), its classes as ``failed_<class>``."""
    rows = []
    for imp in impacts:
        row = {"platform": platform, **{k: v for k, v in asdict(imp).items() if k != "by_class"}}
        row.update({f"failed_{c}": n for c, n in imp.by_class.items()})
        row["error_window_s"] = imp.error_window_s
        rows.append(row)
    return rows
