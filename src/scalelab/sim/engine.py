"""Run a scenario arm in the model and write the same run directory a real run writes.

`simulate` is pure (no I/O): one-second steps of load → service → scaler. `run_arm` writes the
result with `RunWriter` (``platform: sim``, ``modeled_platform`` compose|kubernetes), so
analysis, cost and plots overlay simulated and real runs with no adapter. Arrivals come from the
scenario seed and are the same for every arm (common random numbers), so arms differ only by
how they scale.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from scalelab.cost import cost_usd
from scalelab.load.profiles import profile_for
from scalelab.scenario import HPAScaler, Load, Scenario, apply_overrides, load_scenario
from scalelab.sim.scalers import ScalerEvent, make_scaler
from scalelab.sim.service import Service, ServiceParams
from scalelab.telemetry import RunWriter

__all__ = ["SimResult", "prepare_scenario", "simulate", "run_arm", "run_scenario"]

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


@dataclass
class SimResult:
    scenario: Scenario
    arm: str
    seed: int
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    events: list[ScalerEvent] = field(default_factory=list)

    @property
    def cost_usd(self) -> float:
        return float(self.rows[-1][-1]) if self.rows else 0.0


def prepare_scenario(
    name_or_path: str | os.PathLike[str], *, cpu_budget: float | None = None, seed: int | None = None, overrides: Sequence[str] = ()
) -> Scenario:
    """Load, apply ``--set`` overrides and ``--seed``, and size the scenario.

    The simulator sizes to the scenario's ``reference_cpu_budget`` unless a budget is given: it
    runs nothing on this host, and the same command prints the same numbers everywhere.
    """
    scenario = apply_overrides(load_scenario(name_or_path, sized=False), tuple(overrides))
    if seed is not None:
        scenario = scenario.model_copy(update={"seed": int(seed)})
    return scenario.sized(scenario.reference_cpu_budget if cpu_budget is None else cpu_budget)


def simulate(scenario: Scenario, arm_name: str, *, seed: int | None = None, service_overrides: dict[str, Any] | None = None) -> SimResult:
    """One arm, one-second steps from 0 to ``duration_s``. Deterministic for a seed."""
    if scenario.cpu_budget is None:
        scenario = scenario.sized(scenario.reference_cpu_budget)
    name, arm = scenario.arm(arm_name)
    seed = scenario.seed if seed is None else int(seed)
    params = ServiceParams.for_arm(scenario, arm, **(service_overrides or {}))
    service = Service(params, arm.replicas)
    aux = np.random.default_rng([seed, 1])
    scrape_offset = float(aux.uniform(0.0, arm.scaler.metric_resolution_s)) if isinstance(arm.scaler, HPAScaler) else 0.0
    scaler = make_scaler(arm.scaler, request_m=round(params.cpu_request * 1000), scrape_offset_s=scrape_offset)
    steps = int(scenario.duration_s)
    load = scenario.load
    levels = _levels(load, scenario.duration_s)
    open_loop = load.mode == "open"
    arrivals_open = _open_arrivals(load, scenario.duration_s, seed) if open_loop else ()
    rng = np.random.default_rng(seed)
    limit = params.cpu_limit
    result = SimResult(scenario, name, seed)
    rows = result.rows
    events = result.events
    events.append(ScalerEvent(0.0, "phase", None, "sim", "load"))
    desired_col: list[int] = []
    step = service.step
    act = scaler.act
    for t in range(steps):
        level = levels[t]
        if open_loop:
            arrivals = arrivals_open[t]
        else:
            per_user = 1.0 / max(1.0 / load.user_rps, service.mean_latency_s)
            arrivals = float(rng.poisson(level * per_user))
        s = step(t, arrivals)
        new_events = act(t, t + 1.0, service)
        if new_events:
            events.extend(new_events)
        desired = service.desired
        desired_col.append(desired)
        ready = s.ready
        rows.append(
            (
                t,
                "load",
                desired,
                ready,
                s.cpu_cores,
                100.0 * s.cpu_cores / (ready * limit) if ready else None,
                scaler.seen_util_pct,
                s.mem_mb,
                level,
                s.served,
                s.p50_ms,
                s.p95_ms,
                s.errors,
                s.in_flight if open_loop else level,
            )
        )
    # cumulative cost from desired replica-seconds, as CostMeter accumulates it
    cost = cost_usd(np.cumsum(np.asarray(desired_col, dtype=float)), scenario.price_per_replica_hour).tolist()
    result.rows = [row + (c,) for row, c in zip(rows, cost)]
    for e in service.drain_events():
        events.append(ScalerEvent(e.t_s, e.kind, e.replicas, "sim", e.detail))
    events.sort(key=lambda e: e.t_s)
    return result


@lru_cache(maxsize=8)
def _levels(load: Load, duration_s: float) -> tuple[float, ...]:
    """The profile at each whole second (the same for every arm, so computed once)."""
    profile = profile_for(load, duration_s)
    return tuple(profile(float(t)) for t in range(int(duration_s)))


@lru_cache(maxsize=8)
def _open_arrivals(load: Load, duration_s: float, seed: int) -> tuple[float, ...]:
    """Poisson arrivals per second: the same for every arm of a seed (common random numbers)."""
    rng = np.random.default_rng(seed)
    return tuple(float(a) for a in rng.poisson(np.asarray(_levels(load, duration_s))))


def run_arm(
    scenario: Scenario, arm_name: str, runs_root: str | os.PathLike[str], *, seed: int | None = None, extra: dict[str, Any] | None = None
) -> Path:
    """Simulate one arm and write its run directory; returns the directory."""
    result = simulate(scenario, arm_name, seed=seed)
    writer = RunWriter.create(runs_root, scenario=scenario, arm=arm_name, platform="sim", seed=result.seed, extra=extra)
    with writer:
        start = dt.datetime.fromisoformat(writer.manifest["utc_start"].replace("Z", "+00:00"))
        writer.samples(_sample_dicts(result.rows, start))
        for e in result.events:
            writer.event(round(e.t_s, 3), e.kind, replicas=e.replicas, source=e.source, detail=e.detail, utc=_utc(start, e.t_s))
    return writer.dir


def run_scenario(
    scenario: Scenario, runs_root: str | os.PathLike[str], *, arms: Iterable[str] | None = None, seed: int | None = None
) -> list[Path]:
    """Simulate the given arms (default: all) and write one run directory each."""
    names = list(arms) if arms else list(scenario.arms)
    for name in names:
        scenario.arm(name)  # fail early on a wrong name
    return [run_arm(scenario, name, runs_root, seed=seed) for name in names]


def _utc(start: dt.datetime, t_s: float) -> str:
    return (start + dt.timedelta(seconds=t_s)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _sample_dicts(rows: list[tuple[Any, ...]], start: dt.datetime) -> Iterable[dict[str, Any]]:
    for row in rows:
        d = dict(zip(ROW_COLUMNS, row))
        d["utc"] = _utc(start, row[0])
        yield d
