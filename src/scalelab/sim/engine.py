"""Run a scenario arm in the model and write the same run directory a real run writes.

`simulate` is pure (no I/O): one-second steps of load → service → scaler. `run_arm` writes the
result with `RunWriter` (``platform: sim``, ``modeled_platform`` compose|kubernetes), so
analysis, cost and plots overlay simulated and real runs with no adapter. Arrivals come from the
scenario seed and are the same for every arm (common random numbers), so arms differ only by
how they scale.
"""

from __future__ import annotations

import datetime as dt
import gc
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np

from scalelab.cost import cost_usd
from scalelab.load.profiles import profile_for
from scalelab.scenario import HPAScaler, Load, Scenario, apply_overrides, load_scenario
from scalelab.sim.estimator import kit_p95
from scalelab.sim.faults import disrupt, has_disruptions
from scalelab.sim.scalers import ScalerEvent, make_scaler
from scalelab.sim.service import Service, ServiceParams, StepResult
from scalelab.telemetry import Run, RunWriter
from scalelab.telemetry.store import run_from_columns, shared_provenance

__all__ = ["SimResult", "prepare_scenario", "simulate", "run_arm", "run_scenario", "simulate_runs"]

#: Column order of `SimResult.samples` rows (a subset of telemetry.SAMPLE_COLUMNS, without utc/arm).
ROW_COLUMNS = (
    "t_s",
    "phase",
    "replicas_desired",
    "replicas_ready",
    "cpu_cores_used",
    "cpu_util_pct",
    "hpa_util_pct",
    "mem_mb",
    "offered_load",
    "rps",
    "p50_ms",
    "p95_ms",
    "errors",
    "users",
    "cost_usd_cum",
)


#: Whole-number columns (the HPA's utilisation may be missing); every other numeric column is a float.
INT_COLUMNS = ("t_s", "replicas_desired", "replicas_ready", "hpa_util_pct")


@dataclass
class SimResult:
    """One simulated arm: a column (numpy array) per sample column, and the events."""

    scenario: Scenario
    arm: str
    seed: int
    columns: dict[str, Any] = field(default_factory=dict)
    events: list[ScalerEvent] = field(default_factory=list)
    #: requests.csv rows when the scenario has faults or a rollout (`scalelab.sim.faults`), else None
    requests: list[dict[str, Any]] | None = None

    @property
    def n(self) -> int:
        return len(self.columns.get("t_s", ()))

    @property
    def rows(self) -> list[tuple[Any, ...]]:
        """The samples as row tuples in `ROW_COLUMNS` order (missing values None)."""
        cols: list[list[Any]] = []
        for name in ROW_COLUMNS:
            values = self.columns[name]
            if isinstance(values, str):
                cols.append([values] * self.n)
            elif name in INT_COLUMNS:
                cols.append([None if v != v else int(v) for v in np.asarray(values).tolist()])
            else:
                cols.append([None if v != v else v for v in np.asarray(values).tolist()])
        return list(zip(*cols))

    @property
    def cost_usd(self) -> float:
        return float(self.columns["cost_usd_cum"][-1]) if self.n else 0.0


def prepare_scenario(
    name_or_path: str | os.PathLike[str], *, cpu_budget: float | None = None, seed: int | None = None, overrides: Sequence[str] = ()
) -> Scenario:
    """Load, apply ``--set`` overrides and ``--seed``, and size the scenario.

    The simulator sizes to the scenario's ``reference_cpu_budget`` unless a budget is given: it
    runs nothing on this host, and the same command prints the same numbers everywhere.
    """
    settings = (*overrides, f"seed={int(seed)}") if seed is not None else tuple(overrides)
    scenario = apply_overrides(load_scenario(name_or_path, sized=False), settings)
    return scenario.sized(scenario.reference_cpu_budget if cpu_budget is None else cpu_budget)


def simulate(scenario: Scenario, arm_name: str, *, seed: int | None = None, service_overrides: dict[str, Any] | None = None) -> SimResult:
    """One arm, one-second steps from 0 to ``duration_s``. Deterministic for a seed."""
    # a simulated day keeps 86,400 rows alive: the cyclic garbage collector would walk them again
    # and again while they accumulate, and there is no cycle to find (about 20% of the time)
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _simulate(scenario, arm_name, seed=seed, service_overrides=service_overrides)
    finally:
        if enabled:
            gc.enable()


def _simulate(scenario: Scenario, arm_name: str, *, seed: int | None, service_overrides: dict[str, Any] | None) -> SimResult:
    if scenario.cpu_budget is None:
        scenario = scenario.sized(scenario.reference_cpu_budget)
    name, arm = scenario.arm(arm_name)
    seed = scenario.seed if seed is None else int(seed)
    model = scenario.sim
    fitted: dict[str, Any] = {}
    if model.start_delay_s is not None:
        fitted["start_delay_s"] = model.start_delay_s
    if model.idle_cores is not None:
        fitted["idle_cores"] = model.idle_cores
    if model.cpu_per_request_ms is not None:
        fitted["cpu_ms"] = model.cpu_per_request_ms
    if model.replica_speed_cv:
        fitted["speed_cv"] = model.replica_speed_cv
    if model.host_overhead_cores and scenario.cpu_budget is not None:
        fitted["host_cores"] = max(0.05, scenario.cpu_budget - model.host_overhead_cores)
    params = ServiceParams.for_arm(scenario, arm, **{**fitted, **(service_overrides or {})})
    service = Service(params, arm.replicas)
    aux = np.random.default_rng([seed, 1])
    scrape_offset = 0.0
    if isinstance(arm.scaler, HPAScaler):
        drawn = float(aux.uniform(0.0, arm.scaler.metric_resolution_s))
        scrape_offset = drawn if model.scrape_phase_s is None else float(model.scrape_phase_s) % arm.scaler.metric_resolution_s
    scaler = make_scaler(arm.scaler, request_m=round(params.cpu_request * 1000), scrape_offset_s=scrape_offset, limit_cores=params.cpu_limit)
    steps = int(scenario.duration_s)
    load = scenario.load
    levels = _levels(load, scenario.duration_s)
    open_loop = load.mode == "open"
    arrivals_open = _open_arrivals(load, scenario.duration_s, seed, model.load_start_s) if open_loop else ()
    rng = np.random.default_rng(seed)
    result = SimResult(scenario, name, seed)
    events = result.events
    events.append(ScalerEvent(0.0, "phase", None, "sim", "load"))
    desired_col: list[int] = []
    seen_col: list[int | None] = []
    out: list[Any] = []  # tuples, or arrays of rows (`Service.run`)
    run, act, due_s = service.run, scaler.act, scaler.next_due_s
    t = 0
    while t < steps:
        # serve every second up to the one in which the scaler next acts, in one call; the scaler
        # changes nothing before then (`SimScaler.next_due_s`)
        due = due_s()
        last = steps - 1 if due is None or due >= steps else max(t, math.floor(due))
        if open_loop:
            run(t, arrivals_open[t : last + 1], out)
        else:
            for u in range(t, last + 1):
                per_user = 1.0 / max(1.0 / load.user_rps, service.mean_latency_s)
                run(u, (float(rng.poisson(levels[u] * per_user)),), out)
        if last > t:
            desired_col.extend([service.desired] * (last - t))
            seen_col.extend([scaler.seen_util_pct] * (last - t))
        new_events = act(last, last + 1.0, service)
        if new_events:
            events.extend(new_events)
        desired_col.append(service.desired)
        seen_col.append(scaler.seen_util_pct)
        t = last + 1
    result.columns = _columns(out, desired_col, seen_col, levels, params.cpu_limit, open_loop, scenario.price_per_replica_hour)
    result.columns["p95_ms"] = kit_p95(result.columns["p50_ms"], result.columns["p95_ms"], result.columns["rps"] + result.columns["errors"],
                                       result.columns["replicas_ready"], 1000.0 * params.timeout_s, seed)
    for e in service.drain_events():
        events.append(ScalerEvent(e.t_s, e.kind, e.replicas, "sim", e.detail))
    events.sort(key=lambda e: e.t_s)
    if has_disruptions(scenario):
        disrupt(result, scenario, arm, params)
    return result


def _columns(out: list[Any], desired: list[int], seen: list[int | None], levels: Sequence[float], limit: float,
             open_loop: bool, price: float) -> dict[str, Any]:
    """The per-second `StepResult`s and scaler state as sample columns (numpy arrays)."""
    width = len(StepResult._fields)

    def stacked(tuples: list[tuple[Any, ...]]) -> np.ndarray:
        return np.fromiter(chain.from_iterable(tuples), dtype=np.float64, count=len(tuples) * width).reshape(-1, width)

    # rows come one tuple a second, or as arrays for quiet stretches: each run of tuples between
    # two arrays becomes one array (an HPA arm's day is 86,400 tuples and no array)
    blocks = [i for i, item in enumerate(out) if isinstance(item, np.ndarray)]
    parts: list[np.ndarray] = []
    start = 0
    for i in blocks:
        if i > start:
            parts.append(stacked(out[start:i]))
        parts.append(out[i])
        start = i + 1
    if start < len(out) or not parts:
        parts.append(stacked(out[start:]))
    steps = np.concatenate(parts) if len(parts) > 1 else parts[0]
    n = len(steps)
    col = {f: steps[:, i] for i, f in enumerate(StepResult._fields)}
    ready = col["ready"].astype(np.int64)
    desired_arr = np.asarray(desired, dtype=np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):
        util = np.where(ready > 0, 100.0 * col["cpu_cores"] / (ready * limit), np.nan)
    offered = np.asarray(levels[:n], dtype=np.float64)
    return {
        "t_s": np.arange(n, dtype=np.int64),
        "phase": "load",
        "replicas_desired": desired_arr,
        "replicas_ready": ready,
        "cpu_cores_used": col["cpu_cores"],
        "cpu_util_pct": util,
        "hpa_util_pct": np.array(seen, dtype=np.float64),
        "mem_mb": col["mem_mb"],
        "offered_load": offered,
        "rps": col["served"],
        "p50_ms": col["p50_ms"],
        "p95_ms": col["p95_ms"],
        "errors": col["errors"],
        "users": col["in_flight"] if open_loop else offered,
        # cumulative cost from desired replica-seconds, as CostMeter accumulates it
        "cost_usd_cum": np.asarray(cost_usd(np.cumsum(desired_arr.astype(np.float64)), price), dtype=np.float64),
        "spread_jain": expected_jain(col["served"], ready, col["share_sq"]),
    }


def expected_jain(served: np.ndarray, ready: np.ndarray, share_sq: np.ndarray | None = None, window_s: int = 10) -> np.ndarray:
    """Jain's index of the requests per ready replica over the trailing window (docs/spread.md).

    ``N`` requests of the window land on the replicas at random with shares ``pᵢ``:
    E[Σx²] = N + N(N-1)·Σpᵢ², so the index is about ``N / (n·(1 + (N-1)·Σpᵢ²))``; with even
    shares (``Σpᵢ² = 1/n``, per-request balancing) ``N / (n + N - 1)``, 1 when N >> n.
    ``share_sq`` is Σpᵢ² per second (uneven under per-connection balancing); NaN with fewer
    than two ready replicas.
    """
    cum = np.concatenate([[0.0], np.cumsum(np.nan_to_num(served))])
    idx = np.arange(len(served))
    window = cum[idx + 1] - cum[np.maximum(0, idx + 1 - window_s)]
    n = ready.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        sq = 1.0 / n if share_sq is None else np.where(np.isnan(share_sq), 1.0 / n, share_sq)
        jain = np.where((n >= 2) & (window > 0), window / (n * (1.0 + (window - 1.0) * sq)), np.nan)
    return jain


@lru_cache(maxsize=8)
def _levels(load: Load, duration_s: float) -> tuple[float, ...]:
    """The profile at each whole second (the same for every arm, so computed once)."""
    times = np.arange(int(duration_s), dtype=np.float64)
    profile: Any = profile_for(load, duration_s)  # vectorised: the profiles are numpy expressions
    levels = np.broadcast_to(np.asarray(profile(times), dtype=np.float64), times.shape)
    return tuple(levels.tolist())


#: Up to this many arrivals the simulator replays the load generator's own arrival times.
REPLAY_MAX_ARRIVALS = 50_000


@lru_cache(maxsize=8)
def _open_arrivals(load: Load, duration_s: float, seed: int, start_s: float | None = None) -> tuple[float, ...]:
    """Arrivals per second, the same for every arm of a seed (common random numbers).

    When the scenario says when the load generator started (``start_s``: `scalelab calibrate`
    reads it off a recorded run into ``sim.load_start_s``), they are the load generator's own: the
    arrival times Locust draws for this seed from that moment (`LoadPlan.arrivals`), so the
    simulated run meets the very requests the recorded run met (from one draw of the arrivals to
    another the errors of a 4-minute spike vary by ±40%). The sequence depends on that moment
    (Locust's start-up, 0.5-1.6 s in the recorded runs), so without it, and beyond
    `REPLAY_MAX_ARRIVALS` (the simulated day: 880,000, a Python loop over each), a Poisson count
    per second at the same rates: the same process, another draw."""
    levels = np.asarray(_levels(load, duration_s))
    if start_s is not None and float(levels.sum()) <= REPLAY_MAX_ARRIVALS:
        return _replayed_arrivals(load, duration_s, seed, start_s)
    rng = np.random.default_rng(seed)
    return tuple(rng.poisson(levels).astype(np.float64).tolist())


def replayed_times(load: Load, duration_s: float, seed: int, start_s: float) -> np.ndarray:
    """The load generator's own arrival times for this load and seed, from ``start_s`` after t0
    (`LoadPlan.arrivals`); also the arrivals of the fault model (`scalelab.sim.faults`)."""
    from scalelab.load.plan import LoadPlan

    start = float(start_s)
    scenario = Scenario.model_construct(name="replay", arms={}, load=load, duration_s=duration_s, seed=seed)
    plan = LoadPlan(scenario, 0.0, Path("requests.csv"), None)
    return np.fromiter(plan.arrivals(sleep=lambda _s: None, clock=lambda: start), dtype=np.float64)


def _replayed_arrivals(load: Load, duration_s: float, seed: int, start_s: float) -> tuple[float, ...]:
    times = replayed_times(load, duration_s, seed, start_s)
    n = int(duration_s)
    return tuple(np.bincount(np.minimum(times.astype(np.int64), n - 1), minlength=n)[:n].astype(np.float64).tolist())


def run_arm(
    scenario: Scenario, arm_name: str, runs_root: str | os.PathLike[str], *, seed: int | None = None, extra: dict[str, Any] | None = None
) -> Path:
    """Simulate one arm and write its run directory; returns the directory."""
    return _write_arm(scenario, arm_name, runs_root, seed=seed, extra=extra).dir


def _write_arm(
    scenario: Scenario, arm_name: str, runs_root: str | os.PathLike[str], *, seed: int | None = None, extra: dict[str, Any] | None = None
) -> RunWriter:
    result = simulate(scenario, arm_name, seed=seed)
    writer = RunWriter.create(runs_root, scenario=scenario, arm=arm_name, platform="sim", seed=result.seed, extra=extra)
    with writer:
        start = dt.datetime.fromisoformat(writer.manifest["utc_start"].replace("Z", "+00:00"))
        writer.sample_columns(_sample_columns(result, start), result.n, integers=INT_COLUMNS)
        writer.events({"t_s": round(e.t_s, 3), "utc": _utc(start, e.t_s), "kind": e.kind, "replicas": e.replicas, "source": e.source,
                       "detail": e.detail} for e in result.events)
        if result.requests is not None:
            writer.requests(result.requests)
    return writer


def run_scenario(
    scenario: Scenario, runs_root: str | os.PathLike[str], *, arms: Iterable[str] | None = None, seed: int | None = None
) -> list[Path]:
    """Simulate the given arms (default: all) and write one run directory each."""
    names = list(arms) if arms else list(scenario.arms)
    for name in names:
        scenario.arm(name)  # fail early on a wrong name
    return [run_arm(scenario, name, runs_root, seed=seed) for name in names]


def simulate_runs(
    scenario: Scenario, runs_root: str | os.PathLike[str], *, arms: Iterable[str] | None = None, seed: int | None = None,
    workers: int | None = 1,
) -> list[Run]:
    """Like `run_scenario`, returning the runs as `load_run` reads them, without reading them back.

    Arms are independent, so with several arms they can be simulated and written in ``workers``
    forked processes; ``workers=None`` (what `scalelab sim` passes) means ``$SCALELAB_SIM_WORKERS``,
    else 2 when at least half a core is idle by the 1-minute load average, else 1: three arms then
    take about the time of the slowest (measured on a 2-CPU VM: 1.3 s instead of 1.5 s for `sim
    day` at a load of 1.5; at a load of 4 a second process no longer helps). The default, 1, never
    forks (safe in a notebook's threaded kernel).
    """
    names = list(arms) if arms else list(scenario.arms)
    for name in names:
        scenario.arm(name)
    n = _workers(workers, len(names))
    with shared_provenance():  # one git and version lookup for all arms (and workers)
        if n <= 1:
            return [_write_arm(scenario, name, runs_root, seed=seed).as_run() for name in names]
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # the HPA arms first: they take longest (the controller model), so the others fill in around them
        order = sorted(range(len(names)), key=lambda i: not isinstance(scenario.arms[names[i]].scaler, HPAScaler))
        with ProcessPoolExecutor(max_workers=n, mp_context=multiprocessing.get_context("fork")) as pool:
            futures = {i: pool.submit(_arm_written, scenario, names[i], str(runs_root), seed) for i in order}
            import pandas  # noqa: F401 - the frames are built here: import it while the workers simulate

            return [_run_written(futures[i].result()) for i in range(len(names))]


def _arm_written(scenario: Scenario, arm_name: str, runs_root: str, seed: int | None) -> tuple[Path, dict[str, Any], Any]:
    """A forked worker's arm: what `run_from_columns` needs, without pandas in the worker; its text
    columns packed for the trip back (`_unpack`): pickling 86,400 Python strings costs more than
    the simulation of a quiet arm."""
    writer = _write_arm(scenario, arm_name, runs_root, seed=seed)
    written = writer.written_columns
    if written is not None:
        written = {name: _pack(values) for name, values in written.items()}
    return writer.dir, writer.manifest, written


def _pack(values: Any) -> Any:
    if isinstance(values, np.ndarray) and values.dtype == object and len(values):
        items = values.tolist()
        distinct = set(items)
        if len(distinct) == 1:
            return ("same", values[0], len(values))
        if all(type(v) is str and "\n" not in v for v in distinct):  # one string: a quarter of numpy's 4 bytes a character
            return ("lines", "\n".join(items))
    return values


def _unpack(values: Any) -> Any:
    if isinstance(values, tuple) and values[0] == "same":
        return np.full(values[2], values[1], dtype=object)
    if isinstance(values, tuple) and values[0] == "lines":
        return np.array(values[1].split("\n"), dtype=object)
    return values


def _run_written(found: tuple[Path, dict[str, Any], Any]) -> Run:
    run_dir, manifest, written = found
    if written is not None:
        written = {name: _unpack(values) for name, values in written.items()}
    return run_from_columns(run_dir, manifest, written)


def _workers(requested: int | None, arms: int, load: float | None = None) -> int:
    """How many processes simulate ``arms`` arms (``load``: the 1-minute load average, read when None)."""
    import multiprocessing

    if "fork" not in multiprocessing.get_all_start_methods():
        return 1
    cpus = os.cpu_count() or 1
    if requested is None and os.environ.get("SCALELAB_SIM_WORKERS"):
        requested = int(os.environ["SCALELAB_SIM_WORKERS"])
    if requested is None:  # a second process only with spare CPU: on a busy host it costs more than it saves
        requested = 2 if (os.getloadavg()[0] if load is None else load) <= cpus - 0.5 else 1
    return max(1, min(requested, arms, cpus))


def _utc(start: dt.datetime, t_s: float) -> str:
    return (start + dt.timedelta(seconds=t_s)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _sample_columns(result: SimResult, start: dt.datetime) -> dict[str, Any]:
    """The result's columns for `RunWriter.sample_columns`, with the UTC time of each second."""
    data = dict(result.columns)
    data["utc"] = _utc_seconds(start, result.n)
    return data


def _utc_seconds(start: dt.datetime, n: int) -> list[str]:
    """The ISO times (ms, ``Z``) of ``start`` + 0, 1, ..., n-1 s: each minute's prefix and each
    second's suffix formatted once (a day is 86,400 of them)."""
    minute = start.replace(second=0, microsecond=0, tzinfo=None)
    offset = start.second
    ms = start.microsecond // 1000
    suffixes = [f"{sec:02d}.{ms:03d}Z" for sec in range(60)]
    prefixes = [(minute + dt.timedelta(minutes=m)).strftime("%Y-%m-%dT%H:%M:") for m in range((offset + n + 59) // 60)]
    return [p + x for p in prefixes for x in suffixes][offset : offset + n]
