"""`scalelab watch`: a live view of runs in a browser, second by second, for the projector.

A small read-only web server on 127.0.0.1 (Python's ``http.server``; no dependency) serves one
static page (``page.html`` + ``chart.js``, a tiny canvas chart written for the kit) and two JSON
endpoints that read the run directories as they grow:

- ``GET /api/meta``: the runs (arm, role colour, spike window, latency objective, HPA target);
- ``GET /api/data?since=i,j``: the new samples of each run since row ``i``/``j``, the scale
  events, and the per-replica spread (requests per replica per second, from ``requests.csv``'s
  ``replica`` column).

Only ``GET``/``HEAD`` exist; anything else is ``405``. Files are read incrementally and only up to
the last complete line, so a run being written by `scalelab run` (which flushes every row) is
charted while it records. With ``replay`` the server plays recorded runs on one clock from their
start (``speed`` x real time), so two runs can be watched side by side in sync.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from scalelab.errors import RunFormatError
from scalelab.telemetry import schema

__all__ = ["RunFeed", "LiveServer", "serve", "SPREAD_BUCKET_S"]

LAB = "04-compare-and-cost"
#: Requests per replica are counted in buckets of this many seconds (a second holds too few requests).
SPREAD_BUCKET_S = 5
_STATIC = {"/": ("page.html", "text/html; charset=utf-8"), "/chart.js": ("chart.js", "text/javascript; charset=utf-8")}


class _Tail:
    """Complete CSV lines appended to a file since the last read (header parsed once)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.columns: list[str] | None = None

    def read(self) -> list[dict[str, str]]:
        try:
            with self.path.open("rb") as fh:
                fh.seek(self.offset)
                chunk = fh.read()
        except FileNotFoundError:
            return []
        end = chunk.rfind(b"\n")
        if end < 0:
            return []
        self.offset += end + 1
        rows = []
        for line in chunk[: end + 1].decode("utf-8", errors="replace").splitlines():
            cells = _split_csv(line)
            if self.columns is None:
                self.columns = cells
                continue
            rows.append(dict(zip(self.columns, cells)))
        return rows


def _split_csv(line: str) -> list[str]:
    import csv

    return next(csv.reader([line]), [])


def _num(value: str | None) -> float | None:
    try:
        out = float(value) if value else None
    except ValueError:
        return None
    return out if out is None or math.isfinite(out) else None


@dataclass
class RunFeed:
    """One run directory read as it grows: samples with CPU on one denominator, events, spread."""

    path: Path
    rows: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    spread: dict[int, dict[str, int]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        if not (self.path / schema.MANIFEST).is_file():
            raise RunFormatError(f"{self.path} is not a run directory (no {schema.MANIFEST})",
                                 fix="pass a directory printed by `scalelab run` or `scalelab sim`, e.g. runs/<run-id>", lab=LAB)
        self._samples = _Tail(self.path / schema.SAMPLES)
        self._events = _Tail(self.path / schema.EVENTS)
        self._requests = _Tail(self.path / schema.REQUESTS)
        self._running: set[str] = set()
        self._implicit: int | None = None
        self._changes_t: list[float] = []  # lifecycle events: time, and replicas running after it
        self._changes_n: list[int] = []
        self.meta = self._meta()

    # -- what does not change -------------------------------------------------------------------
    def manifest(self) -> dict[str, Any]:
        return json.loads((self.path / schema.MANIFEST).read_text(encoding="utf-8"))

    def _meta(self) -> dict[str, Any]:
        from scalelab import cpuview, figstyle
        from scalelab.telemetry import load_run

        m = self.manifest()
        run = load_run(self.path)
        sc = run.scenario
        from scalelab.analysis import spike_window_of

        target = cpuview.hpa_target_pct_of_limit(run)
        simulated = m.get("platform") == "sim"
        self._limit = float(sc.workload.cpu_limit)
        self._request_over_limit = float(sc.workload.cpu_request) / self._limit
        self._start_replicas = int(m.get("start_replicas") or 0)
        return {
            "run_id": m.get("run_id", self.path.name),
            "label": run.label,
            "arm": run.arm,
            "role": figstyle.role_of(run),
            "role_name": figstyle.ROLE_NAMES[figstyle.role_of(run)],
            "color": figstyle.arm_color(figstyle.role_of(run), simulated=simulated),
            "scenario": m.get("scenario"),
            "duration_s": float(sc.duration_s),
            "spike": list(spike_window_of(run) or []) or None,
            "objective_ms": float(m.get("latency_objective_ms") or sc.latency_objective_ms),
            "hpa_target_pct_of_limit": target[0] if target else None,
            "hpa_target_pct_of_request": target[1] if target else None,
        }

    # -- what grows -----------------------------------------------------------------------------
    def poll(self) -> None:
        with self._lock:
            for ev in self._events.read():
                self._event(ev)
            for req in self._requests.read():
                t, replica = _num(req.get("t_s")), req.get("replica") or ""
                if t is not None and replica:
                    bucket = int(t // SPREAD_BUCKET_S)
                    counts = self.spread.setdefault(bucket, {})
                    counts[replica] = counts.get(replica, 0) + 1
            for row in self._samples.read():
                self.rows.append(self._row(row))

    def _event(self, ev: dict[str, str]) -> None:
        kind, t = ev.get("kind", ""), _num(ev.get("t_s")) or 0.0
        name = (ev.get("detail") or "").split(" ")[0]
        if kind in ("replica_start", "replica_stop"):
            if self._implicit is None:
                self._implicit = self._start_replicas
            if kind == "replica_start":
                if t <= 1.0 and self._implicit > 0 and name not in self._running:
                    self._implicit -= 1  # an initial replica, announced
                self._running.add(name)
            elif name in self._running:
                self._running.discard(name)
            elif self._implicit > 0:
                self._implicit -= 1
            self._changes_t.append(t)
            self._changes_n.append(self._implicit + len(self._running))
        if kind in ("scale", "hpa_rescale"):
            self.events.append({"t": t, "kind": kind, "replicas": _num(ev.get("replicas")), "detail": ev.get("detail", "")})

    def _running_at(self, t: float | None, ready: float | None) -> float | None:
        import bisect

        i = bisect.bisect_right(self._changes_t, t if t is not None else math.inf) - 1
        if i < 0:  # before any lifecycle event
            return float(self._start_replicas) or ready
        return float(self._changes_n[i])

    def _row(self, row: dict[str, str]) -> dict[str, Any]:
        ready = _num(row.get("replicas_ready"))
        used = _num(row.get("cpu_cores_used"))
        running = self._running_at(_num(row.get("t_s")), ready)
        seen = _num(row.get("hpa_util_pct"))
        return {
            "t": _num(row.get("t_s")),
            "desired": _num(row.get("replicas_desired")),
            "ready": ready,
            "running": running,
            "cpu": used / (running * self._limit) * 100.0 if used is not None and running else None,
            "hpa_seen": seen * self._request_over_limit if seen is not None else None,
            "p95": _num(row.get("p95_ms")),
            "rps": _num(row.get("rps")),
            "offered": _num(row.get("offered_load")),
            "errors": _num(row.get("errors")),
            "cost": _num(row.get("cost_usd_cum")),
        }

    def snapshot(self, since: int, until_t: float | None) -> dict[str, Any]:
        """Rows from index ``since`` (up to ``until_t`` seconds when replaying), events and spread so far."""
        self.poll()
        with self._lock:
            rows = [r for r in self.rows[since:] if until_t is None or (r["t"] is not None and r["t"] <= until_t)]
            limit_t = until_t if until_t is not None else math.inf
            events = [e for e in self.events if e["t"] <= limit_t]
            spread = []
            for bucket in sorted(self.spread):
                t_end = (bucket + 1) * SPREAD_BUCKET_S
                if t_end > limit_t:
                    break
                replicas = set(self.spread[bucket]) | set(self.spread.get(bucket - 1, {}))
                per_s = [self.spread[bucket].get(r, 0) / SPREAD_BUCKET_S for r in replicas]
                spread.append({"t": t_end, "min": min(per_s), "max": max(per_s), "replicas": len(replicas)})
        status = self.manifest().get("status")
        return {"since": since, "rows": rows, "events": events, "spread": spread, "status": status}


class LiveServer:
    """The read-only server of `scalelab watch` (127.0.0.1 only)."""

    def __init__(self, run_dirs: Sequence[str | Path], *, port: int = 8765, replay: bool = False, speed: float = 1.0) -> None:
        if not run_dirs:
            raise RunFormatError("nothing to watch", fix="pass a run directory: scalelab watch runs/<run-id>", lab=LAB)
        self.feeds = [RunFeed(Path(d)) for d in run_dirs]
        self.replay = replay
        self.speed = speed
        self.started = time.monotonic()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), _handler(self))
        self.httpd.daemon_threads = True

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}/"

    def clock_s(self) -> float | None:
        return (time.monotonic() - self.started) * self.speed if self.replay else None

    def meta(self) -> dict[str, Any]:
        return {"runs": [f.meta for f in self.feeds], "replay": self.replay, "speed": self.speed, "spread_bucket_s": SPREAD_BUCKET_S}

    def data(self, since: list[int]) -> dict[str, Any]:
        clock = self.clock_s()
        runs = [feed.snapshot(since[i] if i < len(since) else 0, clock) for i, feed in enumerate(self.feeds)]
        return {"clock": clock, "runs": runs}

    def serve_forever(self) -> None:
        self.httpd.serve_forever(poll_interval=0.2)

    def start_in_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="scalelab-watch", daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _handler(server: LiveServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "scalelab-watch"

        def log_message(self, *_args: Any) -> None:  # quiet: the terminal belongs to the instructor
            return

        def _send(self, code: int, body: bytes, ctype: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            url = urlparse(self.path)
            if url.path in _STATIC:
                name, ctype = _STATIC[url.path]
                self._send(200, resources.files(__package__).joinpath(name).read_bytes(), ctype)
            elif url.path == "/api/meta":
                self._send(200, json.dumps(server.meta()).encode(), "application/json")
            elif url.path == "/api/data":
                raw = parse_qs(url.query).get("since", [""])[0]
                since = [int(x) for x in raw.split(",") if x.strip().isdigit()]
                self._send(200, json.dumps(server.data(since)).encode(), "application/json")
            else:
                self._send(404, b"not found\n", "text/plain; charset=utf-8")

        do_HEAD = do_GET  # noqa: N815

        def _read_only(self) -> None:
            self.send_response(405)
            self.send_header("Allow", "GET, HEAD")
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _read_only  # noqa: N815

    return Handler


def serve(run_dirs: Sequence[str | Path], *, port: int = 8765, replay: bool = False, speed: float = 1.0,
          say: Any = print) -> None:
    """Serve the live view until Ctrl-C."""
    try:
        server = LiveServer(run_dirs, port=port, replay=replay, speed=speed)
    except OSError as exc:
        from scalelab.errors import PreflightError

        raise PreflightError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror}",
                             fix=f"another program uses the port: pick another with --port {port + 1}", lab=LAB) from None
    say(f"live view: {server.url}  (read-only; Ctrl-C to stop)")
    for feed in server.feeds:
        say(f"watching: {feed.path}  ({feed.meta['label']})")
    try:
        server.serve_forever()
    finally:
        server.httpd.server_close()
