"""The agent's Prometheus metrics, kept in plain dicts and rendered by hand (text format 0.0.4).

Updated only from the event loop thread, so no locks are needed.
"""

from __future__ import annotations

import bisect
import time
from collections import defaultdict

__all__ = ["Metrics", "LATENCY_BUCKETS_S", "CONTENT_TYPE"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 30.0)


def _labels(**labels: str) -> str:
    body = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return "{" + body + "}" if body else ""


def _num(value: float) -> str:
    return repr(float(value)) if value != int(value) else str(int(value))


class Metrics:
    def __init__(self, *, hostname: str, work_ms: float, version: str) -> None:
        self.info = {"hostname": hostname, "work_ms": _num(work_ms), "version": version}
        self.requests: dict[tuple[str, str, int], int] = defaultdict(int)
        # per path: bucket counts (one per bound, non-cumulative), sum, count
        self.buckets: dict[str, list[int]] = defaultdict(lambda: [0] * (len(LATENCY_BUCKETS_S) + 1))
        self.latency_sum: dict[str, float] = defaultdict(float)
        self.inflight = 0
        self.work_cpu_s = 0.0
        self.abandoned = 0
        self.ready = 0

    def observe(self, method: str, path: str, status: int, seconds: float) -> None:
        self.requests[(method, path, status)] += 1
        self.buckets[path][bisect.bisect_left(LATENCY_BUCKETS_S, seconds)] += 1
        self.latency_sum[path] += seconds

    def render(self) -> str:
        out = [
            "# HELP agent_info Static facts about this replica.",
            "# TYPE agent_info gauge",
            f"agent_info{_labels(**self.info)} 1",
            "# HELP agent_ready 1 once the warm-up (cold start) is over.",
            "# TYPE agent_ready gauge",
            f"agent_ready {self.ready}",
            "# HELP agent_requests_total HTTP requests answered, by method, path and status.",
            "# TYPE agent_requests_total counter",
        ]
        for (method, path, status), n in sorted(self.requests.items()):
            out.append(f"agent_requests_total{_labels(method=method, path=path, status=str(status))} {n}")
        out += [
            "# HELP agent_request_duration_seconds Time from request received to response sent.",
            "# TYPE agent_request_duration_seconds histogram",
        ]
        for path in sorted(self.buckets):
            cumulative = 0
            for bound, n in zip((*LATENCY_BUCKETS_S, float("inf")), self.buckets[path]):
                cumulative += n
                le = "+Inf" if bound == float("inf") else _num(bound)
                out.append(f"agent_request_duration_seconds_bucket{_labels(path=path, le=le)} {cumulative}")
            out.append(f"agent_request_duration_seconds_sum{_labels(path=path)} {self.latency_sum[path]!r}")
            out.append(f"agent_request_duration_seconds_count{_labels(path=path)} {cumulative}")
        out += [
            "# HELP agent_inflight_requests Chat requests received and not yet answered (queued or working).",
            "# TYPE agent_inflight_requests gauge",
            f"agent_inflight_requests {self.inflight}",
            "# HELP agent_work_cpu_seconds_total CPU spent in the chat work function.",
            "# TYPE agent_work_cpu_seconds_total counter",
            f"agent_work_cpu_seconds_total {self.work_cpu_s!r}",
            "# HELP agent_abandoned_requests_total Chat requests dropped because the client disconnected first.",
            "# TYPE agent_abandoned_requests_total counter",
            f"agent_abandoned_requests_total {self.abandoned}",
            "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.",
            "# TYPE process_cpu_seconds_total counter",
            f"process_cpu_seconds_total {time.process_time()!r}",
        ]
        return "\n".join(out) + "\n"
