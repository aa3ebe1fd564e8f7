"""`scalelab density run`: start containers in growing batches until a stop rule fires, then remove them.

Stop rules (the first that fires ends the ramp): any start error; MemAvailable below the floor;
median start latency above 10x the first batch's for two batches in a row; load average above
the limit; the hard cap; the wall-clock budget. Whatever happens — a stop rule, an exception,
Ctrl-C or SIGTERM in the middle of a batch — the ``finally`` removes every container and network
labelled with the run id and checks that none, and no cgroup of theirs, is left.
"""

from __future__ import annotations

import math
import signal
import statistics
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from scalelab.density import containers, host, plan
from scalelab.density.record import Recorder, new_density_run_id
from scalelab.errors import PreflightError, ScalelabError

__all__ = ["PROFILES", "RampConfig", "StopRules", "Stopped", "batch_sizes", "percentile", "run_ramp", "RampResult", "render_result"]

Say = Callable[[str], None]
LAB = "12-density"


@dataclass(frozen=True)
class RampConfig:
    mode: str = "runtime"
    cap: int = 300
    batch: int = 10
    growth: float = 1.5
    parallel: int = 10
    budget_s: float = 600.0
    settle_s: float = 1.0
    latency_factor: float = 10.0
    load_limit: float | None = None  # None: default_load_limit()
    mem_floor_bytes: int | None = None  # None: plan.memory_floor_bytes
    profile: str = "host"


#: ``host``: this 2-core / 24 GiB VM class; ``laptop``: lower cap, shorter; ``ci``: ~100, well under 3 minutes.
PROFILES: dict[str, dict[str, Any]] = {
    "host": {"cap": 300, "batch": 10, "growth": 1.5, "parallel": 5, "budget_s": 600.0},
    "laptop": {"cap": 100, "batch": 10, "growth": 1.5, "parallel": 4, "budget_s": 300.0},
    "ci": {"cap": 100, "batch": 20, "growth": 1.5, "parallel": 5, "budget_s": 120.0, "settle_s": 0.5},
}


class Stopped(KeyboardInterrupt):
    """SIGTERM (or SIGINT) arrived: unwind to the ``finally`` that cleans up."""

    def __init__(self, signame: str) -> None:
        super().__init__(signame)
        self.signame = signame


def default_load_limit(cpus: int, load_at_start: float) -> float:
    """4 x CPUs, or the load the host already had plus 2 x CPUs when others keep it busy (a shared VM)."""
    return max(4.0 * cpus, load_at_start + 2.0 * cpus)


def batch_sizes(first: int, growth: float, cap: int) -> Iterator[int]:
    """10, 15, 22, 33, ... (x growth, rounded up) until the cap is reached; the last is trimmed to fit."""
    total, size = 0, max(1, first)
    while total < cap:
        step = min(size, cap - total)
        yield step
        total += step
        size = max(size + 1, math.ceil(size * growth))


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class StopRules:
    """The stop rules as a pure function of the batch rows (unit-tested without Docker)."""

    cap: int
    mem_floor_bytes: int
    load_limit: float
    budget_s: float
    latency_factor: float = 10.0
    latency_batches: int = 2
    baseline_ms: float | None = None
    _slow: int = 0

    def check(self, row: dict[str, Any], elapsed_s: float, next_batch_s: float = 0.0) -> str | None:
        """The rule that fires after this batch (``error``, ``memory``, ``latency``, ``load``, ``cap``, ``budget``), or None."""
        if row.get("failed"):
            return "error"
        if row["mem_available_mb"] is not None and row["mem_available_mb"] * 1024**2 < self.mem_floor_bytes:
            return "memory"
        p50 = row.get("latency_p50_ms")
        if p50 is not None:
            if self.baseline_ms is None:
                self.baseline_ms = max(p50, 1.0)
            self._slow = self._slow + 1 if p50 > self.latency_factor * self.baseline_ms else 0
            if self._slow >= self.latency_batches:
                return "latency"
        if row["load1"] is not None and row["load1"] > self.load_limit:
            return "load"
        if row["n_running"] >= self.cap:
            return "cap"
        if elapsed_s + next_batch_s > self.budget_s:
            return "budget"
        return None


@dataclass
class RampResult:
    run_dir: Path
    stop: str
    error: str
    n_max: int
    teardown_s: float
    left: dict[str, list[str]] = field(default_factory=dict)
    prediction: plan.Prediction | None = None


@dataclass
class _Baseline:
    t0: float
    mem_available: int
    tasks: int
    dockerd: host.ProcFigures | None
    containerd: host.ProcFigures | None
    dockerd_pid: int | None
    containerd_pid: int | None


def _mb(value: float | None) -> float | None:
    return None if value is None else value / 1024**2


def _measure(state: dict[str, Any], base: _Baseline, ids: list[str], cpu_before: float | None, interval_s: float,
             bridge: str | None) -> dict[str, Any]:
    """Host-side figures after a batch (empty when the daemon is not visible, e.g. Docker Desktop)."""
    mem = host.meminfo()
    load1, tasks = host.loadavg()
    n = max(1, len(ids))
    d = host.process_figures(base.dockerd_pid) if base.dockerd_pid else None
    c = host.process_figures(base.containerd_pid) if base.containerd_pid else None
    shims = host.shim_processes(set(ids))
    shim_figs = [f for f in (host.process_figures(pid, with_pss=True) for pid in shims.values()) if f]
    row: dict[str, Any] = {
        "mem_available_mb": _mb(mem.get("MemAvailable")),
        "mem_per_container_mb": _mb((base.mem_available - mem.get("MemAvailable", base.mem_available)) / n) if ids else None,
        "cgroup_mb": _mb(statistics.fmean(charged)) if (charged := host.cgroup_memory_bytes(ids)) else None,
        "tasks_total": tasks,
        "tasks_per_container": (tasks - base.tasks) / n if ids else None,
        "load1": load1,
        "memcg": host.memcg_count(),
        "arp_entries": host.arp_entries(),
        "bridge_ports": host.bridge_ports(bridge) if bridge else None,
    }
    if shim_figs:
        row["shim_rss_mb"] = _mb(statistics.fmean(f.rss_bytes for f in shim_figs))
        pss = [f.pss_bytes for f in shim_figs if f.pss_bytes is not None]
        row["shim_pss_mb"] = _mb(statistics.fmean(pss)) if pss else None
    if d and base.dockerd:
        row |= {"dockerd_rss_mb": _mb(d.rss_bytes), "dockerd_fds": d.fds}
        if cpu_before is not None and interval_s > 0:
            row["dockerd_cpu_pct"] = 100 * (d.cpu_s - cpu_before) / interval_s
        state["dockerd_cpu"] = d.cpu_s
    if c:
        row |= {"containerd_rss_mb": _mb(c.rss_bytes), "containerd_fds": c.fds}
    if d and c and base.dockerd and base.containerd and ids:
        daemon_fds = (d.fds or 0) - (base.dockerd.fds or 0) + (c.fds or 0) - (base.containerd.fds or 0)
        row["fds_per_container"] = (daemon_fds + sum(f.fds or 0 for f in shim_figs)) / n
    return row


def _start_batch(client: Any, pool: ThreadPoolExecutor, specs: list[dict[str, Any]], stop_flag: list[bool]) -> list[containers.Started]:
    """Submit a batch and wait for it; ``stop_flag`` keeps queued starts from beginning after a signal."""

    def one(spec: dict[str, Any]) -> containers.Started:
        if stop_flag[0]:
            return containers.Started(None, 0.0, "skipped: the ramp was stopping", time.monotonic())
        return containers.create_and_start(client, spec)

    futures: list[Future[containers.Started]] = [pool.submit(one, s) for s in specs]
    pending = set(futures)
    while pending:  # short waits, so a signal handler runs promptly in the main thread
        _, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
    return [f.result() for f in futures]


def _ready_times(client: Any, started: list[containers.Started], t_start: dict[str, float], network: str, timeout_s: float) -> list[float]:
    urls = {}
    for s in started:
        if s.container_id and not s.error:
            ip = containers.container_ip(client, s.container_id, network)
            if ip:
                urls[s.container_id] = f"http://{ip}:{containers.AGENT_PORT}/readyz"
    return list(containers.wait_http_ready(urls, timeout_s, t_start).values())


def run_ramp(cfg: RampConfig, runs_dir: Path, say: Say = print) -> RampResult:
    """Ramp, record, stop, clean up; returns what was observed (also written to the run directory)."""
    if cfg.mode not in plan.MODES:
        raise ScalelabError(f"--mode must be one of {', '.join(plan.MODES)}, got '{cfg.mode}'", lab=LAB)
    client = containers.connect(cfg.parallel)
    kind, version = containers.engine_kind(client)
    containers.remove_leftovers(client, say)
    image = containers.ensure_image(cfg.mode, client, say)
    limits = plan.read_host_limits(kind, version)
    prediction = plan.predict(limits, cfg.mode, cap=cfg.cap)
    if prediction.budget < 1:
        raise PreflightError(
            f"no room for a {cfg.mode} ramp: {prediction.stops_at} leaves 0 containers "
            f"({limits.mem_available_bytes / plan.GiB:.1f} GiB available)",
            fix="free memory or stop other workloads; `scalelab density plan` shows every limit", lab=LAB)
    cap = min(cfg.cap, prediction.budget)
    floor = cfg.mem_floor_bytes or plan.memory_floor_bytes(limits.mem_total_bytes)
    rules = StopRules(cap=cap, mem_floor_bytes=floor, load_limit=cfg.load_limit or default_load_limit(limits.cpus, limits.load1), budget_s=cfg.budget_s,
                      latency_factor=cfg.latency_factor)
    run_id = new_density_run_id(cfg.mode)
    first = prediction.first
    rec = Recorder(runs_dir, run_id, platform="docker", mode=cfg.mode, extra={
        "config": asdict(replace(cfg, cap=cap, load_limit=rules.load_limit, mem_floor_bytes=floor)), "image": image, "engine": {"kind": kind, "version": version},
        "limits": limits.to_dict(),
        "prediction": {"first_wall": first.name, "fits": first.fits, "error": first.error, "change": first.change,
                       "memory_fits": prediction.memory_fits, "budget": prediction.budget, "stops_at": prediction.stops_at,
                       "costs": asdict(prediction.costs)},
    })
    say(f"run {run_id}: {cfg.mode} mode, cap {cap}, batches of {cfg.batch} x{cfg.growth:g}, {cfg.parallel} at a time, "
        f"budget {cfg.budget_s:.0f} s; predicted first wall: {first.name} after ~{first.fits:,}")
    stop_flag = [False]
    status, stop, error, n_max = "failed", "", "", 0
    ids: list[str] = []
    network = bridge = None
    pool = ThreadPoolExecutor(max_workers=max(1, cfg.parallel), thread_name_prefix="density")
    d_pid, c_pid = (host.find_process("dockerd"), host.find_process("containerd")) if kind == "local" else (None, None)
    base = _Baseline(time.monotonic(), host.meminfo().get("MemAvailable", 0), host.loadavg()[1],
                     host.process_figures(d_pid) if d_pid else None, host.process_figures(c_pid) if c_pid else None, d_pid, c_pid)
    state: dict[str, Any] = {"dockerd_cpu": base.dockerd.cpu_s if base.dockerd else None}
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def on_signal(signum: int, _frame: Any) -> None:
        stop_flag[0] = True
        raise Stopped(signal.Signals(signum).name)

    for sig in previous:
        signal.signal(sig, on_signal)
    try:
        if cfg.mode != "runtime":
            network, bridge = containers.create_network(client, run_id)
        index, last_batch_s = 0, 0.0
        for number, size in enumerate(batch_sizes(cfg.batch, cfg.growth, cap), start=1):
            specs = [containers.container_spec(client, cfg.mode, image, run_id, index + i, network) for i in range(size)]
            index += size
            t_batch = time.monotonic()
            cpu_before = state["dockerd_cpu"]
            started = _start_batch(client, pool, specs, stop_flag)
            batch_s = time.monotonic() - t_batch
            ids += [s.container_id for s in started if s.container_id]
            ok = [s for s in started if not s.error]
            bad = [s for s in started if s.error]
            ready = []
            if cfg.mode == "workload" and ok and network:
                t_start = {s.container_id: s.done_at - s.latency_s for s in ok if s.container_id}
                ready = _ready_times(client, ok, t_start, network, timeout_s=60.0)
            time.sleep(cfg.settle_s)
            t_ps = time.monotonic()
            client.api.containers()
            ps_ms = 1000 * (time.monotonic() - t_ps)
            running = [c["Id"] for c in client.api.containers(filters={"label": f"{containers.LABEL}={run_id}", "status": "running"})]
            lat = [1000 * s.latency_s for s in ok]
            row: dict[str, Any] = {
                "t_s": round(time.monotonic() - base.t0, 3), "batch": number, "n_requested": index, "n_running": len(running),
                "started": len(ok), "failed": len(bad), "latency_p50_ms": percentile(lat, 50), "latency_p95_ms": percentile(lat, 95),
                "latency_max_ms": max(lat) if lat else None, "ready_p50_ms": percentile([1000 * r for r in ready], 50),
                "batch_s": batch_s, "containers_per_s": len(ok) / batch_s if batch_s > 0 else None, "ps_ms": ps_ms,
                "error": bad[0].error if bad else "",
            }
            row |= _measure(state, base, running, cpu_before, time.monotonic() - t_batch, bridge)
            last_batch_s = batch_s
            n_max = max(n_max, len(running))
            reason = rules.check(row, time.monotonic() - base.t0, next_batch_s=last_batch_s * cfg.growth)
            row["stop"] = reason or ""
            rec.batch(row)
            say(f"batch {number:>2}: {len(running):>4} running, start p50 {row['latency_p50_ms'] or 0:>6.0f} ms "
                f"p95 {row['latency_p95_ms'] or 0:>6.0f} ms, {row['containers_per_s'] or 0:5.1f}/s, "
                f"{row.get('mem_per_container_mb') or 0:5.1f} MiB and {row.get('tasks_per_container') or 0:4.1f} tasks each, "
                f"load {row['load1']:.2f}" + (f"  -> stop: {reason}" if reason else ""))
            if reason:
                stop, error = reason, row["error"]
                break
        status = "completed"
    except Stopped as exc:
        stop, error, status = "interrupted", f"{exc.signame} received during the ramp", "interrupted"
        raise
    except Exception as exc:
        stop, error = "error", f"{type(exc).__name__}: {exc}"
        raise
    finally:
        for sig in previous:  # a second Ctrl-C must not cut the cleanup short
            signal.signal(sig, lambda *_: None)
        stop_flag[0] = True
        pool.shutdown(wait=True, cancel_futures=True)
        result = _teardown(client, run_id, ids, network, base.t0, rec, say)
        result.stop, result.error, result.n_max, result.prediction = stop or "none", error, n_max, prediction
        rec.note(round(time.monotonic() - base.t0, 3), f"stop: {result.stop}" + (f"; error: {error}" if error else ""),
                 observed={"stop": result.stop, "error": error, "n_max": n_max, "teardown_s": round(result.teardown_s, 2),
                           "left": result.left})
        rec.finish(status, error=error if status == "failed" else None)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return result


def _teardown(client: Any, run_id: str, ids: list[str], network: str | None, t0: float, rec: Recorder, say: Say) -> RampResult:
    """Remove every object of the run (by label, so a start in flight is caught too) and check nothing is left."""
    t = time.monotonic()
    ours = [c["Id"] for c in containers.list_ours(client, run_id)]
    errors = containers.remove_containers(client, ours)
    containers.remove_networks(client, run_id)
    teardown_s = time.monotonic() - t
    all_ids = sorted(set(ids) | set(ours))
    rec.containers(all_ids)
    left = {
        "containers": [c["Id"][:12] for c in containers.list_ours(client, run_id)],
        "networks": [n["Name"] for n in client.api.networks(filters={"label": f"{containers.LABEL}={run_id}"})],
        "cgroups": _wait_cgroups_gone(all_ids, timeout_s=10.0),
        "errors": errors,
    }
    say(f"removed {len(ours)} containers{' and the network' if network else ''} in {teardown_s:.1f} s; left behind: "
        + (", ".join(f"{len(v)} {k}" for k, v in left.items() if v) or "nothing"))
    rec.writer.event(round(time.monotonic() - t0, 3), "replica_stop", replicas=0, source="density", detail=f"teardown {teardown_s:.2f} s")
    return RampResult(rec.dir, "", "", 0, teardown_s, {k: v for k, v in left.items() if v})


def _wait_cgroups_gone(ids: list[str], timeout_s: float) -> list[str]:
    deadline = time.monotonic() + timeout_s
    left = host.cgroup_dirs(ids)
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = host.cgroup_dirs(ids)
    return left


def render_result(result: RampResult) -> str:
    """The closing lines of `scalelab density run`: the figures the lab asks for, from the run directory."""
    from scalelab.density.figure import summary

    lines = [f"run directory: {result.run_dir}", summary(result.run_dir)]
    if result.left:
        lines.append(f"LEFT BEHIND: {result.left}")
    return "\n".join(lines) + "\n"
