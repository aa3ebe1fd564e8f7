"""What a rollout cost, from a run's records: pure functions, no I/O (docs/rollouts.md).

For each ``rollout_start`` event at ``t_r`` (strategy and target version in its detail) and the
``rollout_end`` after it at ``t_e``, over the requests that completed from ``t_r`` to the end of
the run (``t_s`` of a request is when it completed):

- wall time ``t_e - t_r`` (start to every desired replica on the new version and ready), and
  whether the rollout ended ``ok``;
- failed requests by class (`scalelab.faults.measure.classify`) and the error window, first to
  last failure;
- which version answered: requests answered by the new and the old version, the first answer by
  the new one and the last by an old one (seconds after ``t_r``), and old answers after ``t_e``;
- the fewest ready replicas sampled during the rollout, and p99 and max latency from ``t_r`` to
  the later of ``t_e`` and the last failure (at least 5 s).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from scalelab.faults.measure import MIN_WINDOW_S, count_classes, impact_rows, p99, parse_events, parse_ready, parse_requests

__all__ = ["RolloutImpact", "rollout_impacts", "rollout_rows", "as_fault_rows"]

_FIELD = re.compile(r"(\w+)=(\S+)")


@dataclass(frozen=True)
class RolloutImpact:
    t_start_s: float
    strategy: str
    to: str
    ok: bool
    wall_s: float | None
    requests: int
    failed: int
    by_class: dict[str, int] = field(default_factory=dict)
    first_error_s: float | None = None
    last_error_s: float | None = None
    answered_new: int = 0
    answered_old: int = 0
    #: seconds after the start: first answer by the new version, last answer by an old one
    first_new_s: float | None = None
    last_old_s: float | None = None
    old_after_end: int = 0
    ready_before: int | None = None
    ready_min: int | None = None
    first_replica_start_s: float | None = None
    first_replica_ready_s: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    detail: str = ""

    @property
    def error_window_s(self) -> float:
        if self.first_error_s is None or self.last_error_s is None:
            return 0.0
        return round(self.last_error_s - self.first_error_s, 3)


def _after(t: float | None, t0: float) -> float | None:
    return None if t is None else round(t - t0, 3)


def rollout_impacts(requests: Iterable[Mapping[str, Any]], events: Iterable[Mapping[str, Any]], samples: Iterable[Mapping[str, Any]] = (),
                    *, sample_offset_s: float = 0.4) -> list[RolloutImpact]:
    """One `RolloutImpact` per ``rollout_start`` event, in time order."""
    reqs = parse_requests(requests)
    evs = parse_events(events)
    rows = parse_ready(samples, sample_offset_s)
    starts = [e for e in evs if e.kind == "rollout_start"]
    out = []
    for i, start in enumerate(starts):
        t_r = start.t
        t_next = starts[i + 1].t if i + 1 < len(starts) else float("inf")
        fields = dict(_FIELD.findall(start.detail))
        to = fields.get("to", "")
        end = next((e for e in evs if e.kind == "rollout_end" and t_r <= e.t < t_next), None)
        t_e = end.t if end is not None else None
        span = [r for r in reqs if t_r <= r.t < t_next]
        failed = [r for r in span if not r.ok]
        answered = [r for r in span if r.ok]
        new = [r for r in answered if r.version == to]
        old = [r for r in answered if r.version != to]
        last_err = failed[-1].t if failed else None
        t_window = max(t_r + MIN_WINDOW_S, t_e or t_r, last_err or t_r)
        latencies = sorted(r.ms for r in span if r.t <= t_window)
        before = [ready for t, ready in rows if t < t_r]
        during = [ready for t, ready in rows if t_r <= t <= (t_e if t_e is not None else t_next)]

        def first(kind: str, t_r: float = t_r, t_next: float = t_next) -> float | None:
            return next((e.t for e in evs if e.kind == kind and t_r <= e.t < t_next), None)

        out.append(RolloutImpact(
            t_start_s=t_r, strategy=fields.get("strategy", ""), to=to,
            ok=end is not None and end.detail.startswith("ok"), wall_s=_after(t_e, t_r),
            requests=len(span), failed=len(failed), by_class=count_classes(failed),
            first_error_s=failed[0].t if failed else None, last_error_s=last_err,
            answered_new=len(new), answered_old=len(old),
            first_new_s=_after(new[0].t if new else None, t_r), last_old_s=_after(old[-1].t if old else None, t_r),
            old_after_end=sum(1 for r in old if t_e is not None and r.t > t_e),
            ready_before=int(before[-1]) if before else None, ready_min=int(min(during)) if during else None,
            first_replica_start_s=_after(first("replica_start"), t_r), first_replica_ready_s=_after(first("replica_ready"), t_r),
            p99_ms=p99(latencies), max_ms=latencies[-1] if latencies else None,
            detail=end.detail if end is not None else "no rollout_end: the run ended first",
        ))
    return out


def rollout_rows(platform: str, impacts: Iterable[RolloutImpact]) -> list[dict[str, Any]]:
    """Flat rows for a table (one per rollout)."""
    return impact_rows(platform, impacts)


def as_fault_rows(platform: str, impacts: Iterable[RolloutImpact]) -> list[dict[str, Any]]:
    """Rollouts as rows of the faults table (`python -m scalelab.faults`): kind ``rollout:<strategy>``,
    replacement/ready = the first new replica's start/ready, first 2xx = the first answer by the new
    version, back to desired = the rollout's wall time."""
    rows = []
    for imp in impacts:
        row: dict[str, Any] = {
            "platform": platform, "kind": f"rollout:{imp.strategy}", "t_fault_s": imp.t_start_s, "requests": imp.requests, "failed": imp.failed,
            "error_window_s": imp.error_window_s, "to_replacement_s": imp.first_replica_start_s, "to_ready_s": imp.first_replica_ready_s,
            "to_first_2xx_s": imp.first_new_s, "to_desired_s": imp.wall_s, "ready_before": imp.ready_before, "ready_min": imp.ready_min,
            "p99_ms": imp.p99_ms, "max_ms": imp.max_ms,
        }
        row.update({f"failed_{c}": n for c, n in imp.by_class.items()})
        rows.append(row)
    return rows
