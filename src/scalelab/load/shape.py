"""The Locust side of a run: the load shape and the per-request recorder.

Imported only by ``loadgen/locustfile.py`` inside the Locust subprocess: importing Locust
monkey-patches the interpreter (https://docs.locust.io/en/stable/use-as-lib.html), so the kit's own process never does.

- `shape_class(plan)`: a `LoadTestShape` that looks the profile up once a second. Closed loop:
  the profile's value is the number of users. Open loop: one arrival user for the whole run
  (it fires requests on the profile's schedule). Both end after the load plus the drain time.
- `RequestRecorder`: an ``events.request`` listener writing one ``requests.csv`` row per request
  (columns `scalelab.telemetry.schema.REQUEST_COLUMNS`, ``t_s`` = completion time), flushed
  every 0.25 s by a greenlet, plus a small JSON status file (users, in-flight) for the runner.
"""

from __future__ import annotations

import csv
import json
import os
import time
from typing import Any

import gevent
from locust import LoadTestShape

from scalelab.load.plan import LoadPlan
from scalelab.telemetry.schema import REQUEST_COLUMNS

__all__ = ["shape_class", "RequestRecorder", "FLUSH_INTERVAL_S"]

FLUSH_INTERVAL_S = 0.25


def shape_class(plan: LoadPlan) -> type[LoadTestShape]:
    """A LoadTestShape for ``plan`` (returns None to end the test)."""

    class ScenarioShape(LoadTestShape):
        def tick(self) -> tuple[int, float] | None:
            t = plan.now()
            if t >= plan.duration_s + plan.drain_s:
                return None
            if plan.mode == "open":
                return (1, 1.0)
            users = plan.closed_users(min(t, plan.duration_s)) if t < plan.duration_s else 0
            return (users, float(max(1, users)))

    ScenarioShape.__name__ = ScenarioShape.__qualname__ = "ScenarioShape"
    return ScenarioShape


def _replica_of(response: Any) -> tuple[str, str]:
    """The replica's hostname and the version it reports, from the agent's JSON reply ('' when absent)."""
    if response is None:
        return "", ""
    try:
        body = response.json()
    except Exception:  # noqa: BLE001 - any unparsable body just has no replica
        return "", ""
    if not isinstance(body, dict):
        return "", ""
    return str(body.get("hostname", "")), str(body.get("version", ""))


def _clean(text: str) -> str:
    return " ".join(text.replace(",", ";").split())[:200]


class RequestRecorder:
    """Writes request records and the status file; ``in_flight`` is kept by the open-loop user."""

    def __init__(self, plan: LoadPlan) -> None:
        self.plan = plan
        self.in_flight = 0
        self.users = 0
        self.dropped = 0
        self._fh = plan.requests_csv.open("a", newline="", encoding="utf-8")
        self._csv = csv.writer(self._fh, lineterminator="\n")
        if plan.requests_csv.stat().st_size == 0:
            self._csv.writerow(REQUEST_COLUMNS)
        self._flusher: Any = None

    # -- events -------------------------------------------------------------------------------
    def on_request(self, request_type: str, name: str, response_time: float, response_length: int, response: Any = None,
                   context: Any = None, exception: Any = None, start_time: float | None = None, url: str | None = None,
                   **_: Any) -> None:
        start = start_time if start_time is not None else time.time() - response_time / 1000.0
        done_t = start + response_time / 1000.0 - self.plan.t0_epoch
        status = getattr(response, "status_code", 0) or 0
        replica, version = _replica_of(response) if status else ("", "")
        self.write(done_t, response_time, exception is None, int(status), replica,
                   "" if exception is None else _clean(f"{type(exception).__name__}: {exception}"), version)

    def write(self, t_s: float, response_ms: float, ok: bool, status_code: int, replica: str, error: str, version: str = "") -> None:
        self._csv.writerow((round(t_s, 4), round(response_ms, 2), int(ok), status_code, replica, version, error))

    def record_dropped(self) -> None:
        """An open-loop arrival not sent because too many requests were unanswered."""
        self.dropped += 1
        self.write(self.plan.now(), 0.0, False, 0, "", f"dropped: more than {self.plan.max_in_flight} requests in flight")

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self, environment: Any) -> None:
        self._env = environment
        self._flusher = gevent.spawn(self._flush_loop)

    def _flush_loop(self) -> None:
        while True:
            gevent.sleep(FLUSH_INTERVAL_S)
            self.flush()

    def flush(self) -> None:
        if not self._fh.closed:
            self._fh.flush()
        if self.plan.status_file is not None:
            runner = getattr(getattr(self, "_env", None), "runner", None)
            users = runner.user_count if runner is not None else 0
            status = {"t_s": round(self.plan.now(), 3), "users": users, "in_flight": self.in_flight, "dropped": self.dropped}
            tmp = self.plan.status_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(status), encoding="utf-8")
            os.replace(tmp, self.plan.status_file)

    def close(self, **_: Any) -> None:
        if self._flusher is not None:
            self._flusher.kill(block=False)
        self.flush()
        self._fh.close()


