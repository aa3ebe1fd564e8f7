"""Fit the simulator to a recorded run: CPU per request, start and readiness delays, the
metrics-server scrape phase and the host's overhead.

Reads only the run directory. ``work_ms`` = Σ(CPU used − idle) / Σ requests over the seconds
that served requests; the start delay is the median time from a scale decision (``scale`` or
``hpa_rescale`` event, moved back to the second the desired count rose when the kit saw the
event later) to the next ``replica_start``; the readiness delay is the median
``replica_start`` → ``replica_ready`` of each replica. The host overhead is what the replicas
could not get of the CPU budget when the host held them back (requests waiting, CPU clearly below
their limits together): the budget minus the median of their CPU over those seconds (0 when that
never happened). The scrape phase
(HPA arms) is the one of the whole seconds in ``[0, metric_resolution)`` with which the simulated
replica count agrees best with the recorded one (most seconds within ±1). The result is written
as ``--set`` overrides (YAML) that `scalelab sim` accepts: ``workload.*`` and ``sim.*`` fields.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from scalelab.errors import RunFormatError
from scalelab.sim.service import ServiceParams
from scalelab.telemetry import Run

__all__ = ["Calibration", "calibrate", "fitted_scenario", "write_calibration", "calibration_path", "DEFAULT_DIR"]

#: How late the kit may see a scale decision's event (it polls the Kubernetes API once a second).
EVENT_LAG_S = 3.0

#: Replicas count as held back by the host when they used at least this much less than their limits together.
HOST_LIMITED_MARGIN_CORES = 0.1
#: A replica with work queued is held back when it used less than this share of its limit...
HOST_LIMITED_SHARE = 0.85
#: ...over this many seconds (the CPU a kubelet or `docker stats` reports for one second is noisy).
HOST_WINDOW_S = 5
#: Fewer host-limited seconds than this: no overhead.
HOST_MIN_SECONDS = 5
#: A replica counts as busy the whole second with at least this many requests in flight on average...
SATURATED_IN_FLIGHT = 2.0
#: ...and the CPU per request is measured on them when there are at least this many such replica-seconds.
SATURATED_MIN_SECONDS = 20
#: A replica's service rate at its limit is measured when it has at least this many saturated seconds...
SPEED_MIN_SECONDS = 10
#: ...and the spread of the rates needs at least this many such replicas.
SPEED_MIN_REPLICAS = 3
#: Replica-seconds without requests needed to fit the idle CPU of a replica.
IDLE_MIN_SECONDS = 30
#: The scrape phase is fitted to the HPA's reported utilisation when the run has at least this many seconds of it.
SCRAPE_MIN_SECONDS = 30

#: Where `scalelab calibrate` writes by default: runs are immutable, so never into the run it reads.
DEFAULT_DIR = Path("reports") / "calibration"


def calibration_path(run_dir: str | os.PathLike[str], out: str | os.PathLike[str] | None = None) -> Path:
    """``out``, or ``reports/calibration/<run-id>.yaml``; refuses a path inside the run directory."""
    run = Path(run_dir).resolve()
    path = Path(out) if out is not None else DEFAULT_DIR / f"{run.name}.yaml"
    if path.resolve().is_relative_to(run):
        raise RunFormatError(
            f"--out {path} is inside the run directory {run_dir}: a run is written once and never changed afterwards",
            fix=f"write the calibration elsewhere, e.g. --out {DEFAULT_DIR / (run.name + '.yaml')} (the default)",
            lab="05-what-if-with-the-simulator",
        )
    return path


@dataclass(frozen=True)
class Calibration:
    run_id: str
    work_ms: float | None
    start_delay_s: float | None
    warmup_s: float | None
    seconds_used: int
    replicas_timed: int
    host_overhead_cores: float | None = None
    scrape_phase_s: float | None = None
    idle_cores: float | None = None
    load_start_s: float | None = None
    cpu_per_request_ms: float | None = None
    replica_speed_cv: float | None = None

    def overrides(self) -> list[str]:
        """``--set`` arguments for the scenario: the workload's figures and the simulator's ``sim.*`` fields."""
        figures = (
            ("workload.work_ms", self.work_ms, ".1f"),
            ("workload.warmup_s", self.warmup_s, ".2f"),
            ("sim.start_delay_s", self.start_delay_s, ".2f"),
            ("sim.host_overhead_cores", self.host_overhead_cores, ".3f"),
            ("sim.scrape_phase_s", self.scrape_phase_s, "g"),
            ("sim.idle_cores", self.idle_cores, ".4f"),
            ("sim.load_start_s", self.load_start_s, ".3f"),
            ("sim.cpu_per_request_ms", self.cpu_per_request_ms, ".1f"),
            ("sim.replica_speed_cv", self.replica_speed_cv, ".3f"),
        )
        return [f"{field}={value:{fmt}}" for field, value, fmt in figures if value is not None]


def calibrate(run: Run, *, min_rps: float = 1.0) -> Calibration:
    s = run.samples
    rps = pd.to_numeric(s["rps"], errors="coerce")
    cpu = pd.to_numeric(s["cpu_cores_used"], errors="coerce")
    running = pd.to_numeric(s["replicas_ready"], errors="coerce").fillna(0)
    use = (rps >= min_rps) & cpu.notna()
    if not use.any():
        raise RunFormatError(
            f"{run.path}: no second with cpu_cores_used and at least {min_rps} request/s to fit the CPU per request",
            fix="calibrate from a run that served load (a spike or steady run with the sampler's CPU column filled)",
        )
    idle_fit = _idle_cores(run)
    idle = ServiceParams().idle_cores if idle_fit is None else idle_fit
    # every second of the load with a CPU figure, not only those that completed a request: a
    # request's CPU falls partly in the seconds around the one it completes in (and the CPU figure
    # trails by a refresh), so leaving out the quiet seconds drops CPU and not requests
    # and not the seconds around timeouts: an abandoned request costs CPU and is no request served
    phase = s["phase"] if "phase" in s else pd.Series("load", index=s.index)
    counted = cpu.notna() & ((phase == "load") if (phase == "load").any() else True) & _clean_seconds(run)
    busy = (cpu[counted] - running[counted] * idle).clip(lower=0).sum()
    work_ms = float(busy / rps[counted].fillna(0).sum() * 1000.0)
    cpu_ms = None
    sat = _saturated_seconds(run)  # the per-replica seconds both fits below read
    saturated = _saturated_work_ms(sat)
    if saturated is not None:  # the quota per request sets the queues; the average what the counters see
        work_ms, cpu_ms = saturated, round(work_ms, 1)
    start_delay, warmup, timed = _delays(run.events, run.samples)
    overhead = _host_overhead(run, cpu)
    cal = Calibration(str(run.manifest.get("run_id", run.path.name)), work_ms, start_delay, warmup, int(use.sum()), timed, overhead,
                      idle_cores=idle_fit, load_start_s=_load_start(run), cpu_per_request_ms=cpu_ms, replica_speed_cv=_replica_speed_cv(sat))
    return replace(cal, scrape_phase_s=_scrape_phase(run, cal))


def _saturated_work_ms(sat: pd.DataFrame | None) -> float | None:
    """CPU per request measured on replicas that were busy the whole second (`_saturated_seconds`): requests queued on
    them (in flight >= ``SATURATED_IN_FLIGHT`` on average), their CPU at the limit, and no client
    timing out within ``timeout + 2`` s (whose abandoned work would count without a request). Each
    such replica-second's CPU over the requests it completed, summed; None with fewer than
    ``SATURATED_MIN_SECONDS`` of them (or no per-replica table).

    That is the figure the queues depend on: what a replica at its CPU quota gets through. It
    comes out 3-20% above the CPU per request averaged over a whole run (53-58 ms against 46-53
    in the recorded runs): a replica at its quota spends more per request (throttled in slices of
    the CFS period, the server loop handling the queued connections), and a run's average leans
    on quiet seconds whose CPU figures trail and mix in idle work."""
    if sat is None:
        return None
    done = float(pd.to_numeric(sat["requests"], errors="coerce").sum())
    if len(sat) < SATURATED_MIN_SECONDS or done <= 0:
        return None
    return float(pd.to_numeric(sat["cpu_cores"], errors="coerce").sum() / done * 1000.0)


def _saturated_seconds(run: Run) -> pd.DataFrame | None:
    """The per-replica rows of the replica-seconds `_saturated_work_ms` measures on: ready, requests
    queued (in flight >= ``SATURATED_IN_FLIGHT``), CPU at the limit, no client timing out within
    ``timeout + 2`` s; None without a per-replica table."""
    rep = _replica_table(run)
    if rep is None:
        return None
    limit = float(run.scenario.workload.cpu_limit)
    s = run.samples
    clean = set(s["t_s"][_clean_seconds(run)].round().astype(int))
    return rep[(pd.to_numeric(rep["ready"], errors="coerce") > 0) & (pd.to_numeric(rep["in_flight"], errors="coerce") >= SATURATED_IN_FLIGHT)
               & (pd.to_numeric(rep["cpu_cores"], errors="coerce") >= HOST_LIMITED_SHARE * limit) & rep["t_s"].round().astype(int).isin(clean)]


def _replica_speed_cv(sat: pd.DataFrame | None) -> float | None:
    """How much the replicas' service rates at their limit differ: the coefficient of variation
    over the replicas of the requests each answered per second in its saturated seconds
    (`_saturated_seconds`: requests queued, CPU at the limit, no timeout near, whose cost the model
    charges on its own), less the spread that counting alone gives. A replica's rate over n
    seconds is a mean of n counts, so the rates of equal replicas already differ by the variance
    of those means (each replica's per-second variance over n); the fit keeps what the replicas'
    rates differ by beyond it (one-way random effects, method of moments), 0 when nothing is left.
    None with fewer than ``SPEED_MIN_REPLICAS`` replicas of ``SPEED_MIN_SECONDS`` such seconds."""
    if sat is None:
        return None
    counts = pd.to_numeric(sat["requests"], errors="coerce").groupby(sat["replica"])
    per = pd.DataFrame({"n": counts.count(), "rate": counts.mean(), "var": counts.var(ddof=1)})
    per = per[per["n"] >= SPEED_MIN_SECONDS]
    if len(per) < SPEED_MIN_REPLICAS or float(per["rate"].mean()) <= 0:
        return None
    between = float(per["rate"].var(ddof=1)) - float((per["var"] / per["n"]).mean())
    return round(max(0.0, between) ** 0.5 / float(per["rate"].mean()), 3)


def _load_start(run: Run) -> float | None:
    """When the recorded run's load generator started its arrivals: the first request's start
    (its completion minus its latency) less the first gap the generator draws for the seed at the
    starting rate (`LoadPlan.arrivals`: ``expovariate(rate)``, the first draw of ``Random(seed)``).
    None for a closed loop, a simulated run or a run without requests."""
    import random

    from scalelab.load.profiles import profile_for

    scenario = run.scenario
    if scenario.load.mode != "open" or run.manifest.get("platform") == "sim":
        return None
    req = run.requests
    if req is None or len(req) == 0:
        return None
    sent = pd.to_numeric(req["t_s"], errors="coerce") - pd.to_numeric(req["response_ms"], errors="coerce") / 1000.0
    first = float(sent.min())
    if not first == first:
        return None
    level = profile_for(scenario.load, scenario.duration_s)
    start = max(0.0, first - random.Random(scenario.seed).expovariate(1.0) / max(float(level(0.0)), 1e-9))
    return round(start, 3)


def _clean_seconds(run: Run) -> pd.Series:
    """Per sample: no client timed out in it or in the ``timeout + 2`` s after it (so no replica
    spent CPU on a request it abandoned around it)."""
    s = run.samples
    t = pd.to_numeric(s["t_s"], errors="coerce").round()
    errors = pd.to_numeric(s["errors"], errors="coerce").fillna(0).groupby(t).sum().sort_index()
    horizon = int(run.scenario.workload.timeout_s) + 2
    upcoming = errors[::-1].rolling(horizon + 1, min_periods=1).sum()[::-1]  # errors in [t, t + horizon]
    return t.map(upcoming == 0).fillna(True).astype(bool)


def _idle_cores(run: Run) -> float | None:
    """The mean CPU of a ready replica with no request in flight in a second, the one before and
    the two after it (a CPU figure trails its work by up to a refresh), from the per-replica table;
    None without per-replica CPU (or fewer than ``IDLE_MIN_SECONDS`` such replica-seconds)."""
    rep = _replica_table(run)
    if rep is None:
        return None
    rep = rep[pd.to_numeric(rep["ready"], errors="coerce").fillna(0) > 0].sort_values(["replica", "t_s"])
    busy = pd.to_numeric(rep["in_flight"], errors="coerce").fillna(0) > 0
    by = busy.groupby(rep["replica"])
    quiet = ~busy & ~by.shift(1, fill_value=False) & ~by.shift(-1, fill_value=False) & ~by.shift(-2, fill_value=False)
    cores = pd.to_numeric(rep["cpu_cores"], errors="coerce")[quiet].dropna()
    return round(float(cores.mean()), 4) if len(cores) >= IDLE_MIN_SECONDS else None


def _host_overhead(run: Run, cpu: pd.Series) -> float | None:
    """Budget minus what the replicas typically got when the host held them back; None without a budget.

    A replica with work queued runs at its CPU limit (its quota) unless the host cannot give it
    that; so the host held the replicas back when every replica that had requests waiting
    throughout ``HOST_WINDOW_S`` seconds used clearly less than its limit over them
    (`_host_limited_seconds`, from the per-replica table of a real run). The median of the
    replicas' CPU over those seconds is what the rest of the machine (control plane, load
    generator, sampler, other users) left them; the best second would overstate it. Runs without
    per-replica figures (simulated ones) use the pooled rule (`_pooled_host_limited`).
    """
    budget = run.manifest.get("cpu_budget")
    if budget is None:
        return None
    held_cpu = _host_limited_cpu(run)
    if held_cpu is not None:
        if len(held_cpu) < HOST_MIN_SECONDS:
            return 0.0
        return round(max(0.0, float(budget) - float(held_cpu.median())), 3)
    return _pooled_host_limited(run, cpu, float(budget))


def _replica_table(run: Run) -> pd.DataFrame | None:
    """The per-replica table of a recorded run (requests, in flight and CPU per replica and second);
    None for a simulated run (it has none: the model keeps no per-replica CPU) or without CPU figures."""
    if run.manifest.get("platform") == "sim":
        return None
    try:
        rep = run.replicas
    except (OSError, ValueError, KeyError):
        return None
    if rep is None or len(rep) == 0 or "cpu_cores" not in rep or pd.to_numeric(rep["cpu_cores"], errors="coerce").notna().sum() == 0:
        return None
    # a CPU figure equal to those of the two seconds before is a counter that did not refresh (the
    # kubelet's refreshed every 16.7 s early in one recorded run), not a measurement of that second;
    # a single repeat is the sampler reading the same figure twice, still that second's rate
    rep = rep.sort_values(["replica", "t_s"]).copy()
    cores = pd.to_numeric(rep["cpu_cores"], errors="coerce")
    by = cores.groupby(rep["replica"])
    rep["cpu_cores"] = cores.where((cores != by.shift(1)) | (cores != by.shift(2)))
    return rep


def _host_limited_cpu(run: Run) -> pd.Series | None:
    """The replicas' CPU (rolling mean over ``HOST_WINDOW_S``) in the seconds the host held them
    back, from replicas.csv; None when the run has no per-replica CPU."""
    rep = _replica_table(run)
    if rep is None:
        return None
    rep = rep[pd.to_numeric(rep["ready"], errors="coerce").fillna(0) > 0]
    in_flight = rep.pivot_table(index="t_s", columns="replica", values="in_flight")
    cores = rep.pivot_table(index="t_s", columns="replica", values="cpu_cores")
    limit = float(run.scenario.workload.cpu_limit)
    queued = in_flight.rolling(HOST_WINDOW_S).min() >= 1.0  # work waiting on it all along
    fresh = max(2, HOST_WINDOW_S // 2 + 1)  # refreshed CPU figures needed in the window
    below = (cores.rolling(HOST_WINDOW_S, min_periods=fresh).mean() < HOST_LIMITED_SHARE * limit) & queued
    held = (queued.sum(axis=1) >= 1) & (below.sum(axis=1) == queued.sum(axis=1))
    return cores.sum(axis=1, min_count=1).rolling(HOST_WINDOW_S, min_periods=fresh).mean()[held].dropna()


def _pooled_host_limited(run: Run, cpu: pd.Series, budget: float) -> float:
    """Without per-replica figures: seconds with requests waiting (p95 over the objective) and the
    replicas clearly below their limits together, with the same replicas ready for the client's
    timeout before (right after replicas join, the old ones still hold what waited while the new
    ones idle: the pool uses less than its limits without the host holding anyone back)."""
    s = run.samples
    objective = float(run.manifest.get("latency_objective_ms") or 0) or float("inf")
    p95 = pd.to_numeric(s["p95_ms"], errors="coerce")
    ready = pd.to_numeric(s["replicas_ready"], errors="coerce").fillna(0)
    limits = ready * float(run.scenario.workload.cpu_limit)
    window = max(1, round(float(run.scenario.workload.timeout_s))) + 1
    settled = ready.rolling(window, min_periods=window).apply(lambda r: float(r.min() == r.max()), raw=True) == 1.0
    held = (p95 > objective) & cpu.notna() & (cpu < limits - HOST_LIMITED_MARGIN_CORES) & settled
    if held.sum() < HOST_MIN_SECONDS:
        return 0.0
    return round(max(0.0, budget - float(cpu[held].median())), 3)


def _scrape_phase(run: Run, cal: Calibration) -> float | None:
    """The whole-second scrape phase with which the utilisation the simulated HPA reads follows the
    one the real HPA reported (``hpa_util_pct``: the metrics-server window it was computed over is
    what the phase sets) most closely, by the mean absolute difference; ties, and runs without
    that column, by how well the simulated replicas follow the recorded ones (most seconds within
    ±1, then the smallest mean difference)."""
    import numpy as np

    from scalelab.scenario import HPAScaler
    from scalelab.sim.engine import simulate

    scenario = run.scenario
    _, arm = scenario.arm(run.arm)
    if not isinstance(arm.scaler, HPAScaler):
        return None
    base = fitted_scenario(scenario, cal)
    samples = run.samples.drop_duplicates("t_s")
    samples = samples.set_index(samples["t_s"].round().astype(int))
    real = samples["replicas_desired"]
    seen = pd.to_numeric(samples["hpa_util_pct"], errors="coerce") if "hpa_util_pct" in samples else pd.Series(dtype=float)
    best: tuple[float, ...] | None = None
    phase = None
    for candidate in range(int(arm.scaler.metric_resolution_s)):
        sim = simulate(base.model_copy(update={"sim": base.sim.model_copy(update={"scrape_phase_s": float(candidate)})}), run.arm)
        t = np.asarray(sim.columns["t_s"])
        desired = pd.Series(np.asarray(sim.columns["replicas_desired"]), index=t)
        joined = pd.concat([real, desired], axis=1, join="inner").dropna()
        if joined.empty:
            return None
        diff = (joined.iloc[:, 0] - joined.iloc[:, 1]).abs()
        util = pd.concat([seen, pd.Series(np.asarray(sim.columns["hpa_util_pct"], dtype=float), index=t)], axis=1, join="inner").dropna()
        util_gap = float((util.iloc[:, 0] - util.iloc[:, 1]).abs().mean()) if len(util) >= SCRAPE_MIN_SECONDS else 0.0
        score = (-util_gap, float((diff <= 1).mean()), -float(diff.mean()))
        if best is None or score > best:
            best, phase = score, float(candidate)
    return phase


def _delays(events: pd.DataFrame, samples: pd.DataFrame | None = None) -> tuple[float | None, float | None, int]:
    if events is None or len(events) == 0:
        return None, None, 0
    ev = events.sort_values("t_s", kind="stable")
    decisions = ev[ev["kind"].isin(["scale", "hpa_rescale"])]["t_s"].to_numpy(dtype=float)
    if samples is not None and len(decisions):
        decisions = _decision_times(decisions, samples)
    starts = ev[ev["kind"] == "replica_start"]
    readies = ev[ev["kind"] == "replica_ready"]
    start_delays = []
    for t in starts["t_s"].to_numpy(dtype=float):
        earlier = decisions[decisions <= t]
        if len(earlier):
            start_delays.append(t - earlier[-1])
    ready_at = dict(zip(readies["detail"], readies["t_s"].astype(float)))
    warmups = [ready_at[name] - t for name, t in zip(starts["detail"], starts["t_s"].astype(float)) if name in ready_at and ready_at[name] >= t]
    median = lambda xs: float(pd.Series(xs).median()) if xs else None  # noqa: E731
    return median(start_delays), median(warmups), len(warmups)


def _decision_times(logged: Any, samples: pd.DataFrame) -> Any:
    """Scale decisions at the time they were taken. The HPA's are known from the Kubernetes event,
    which the kit sees only when it polls the API (its pods can already be starting): a decision
    logged more than a second, and at most ``EVENT_LAG_S``, after the sample in which the desired
    count had already risen is moved back to that sample's second."""
    import numpy as np

    desired = pd.to_numeric(samples["replicas_desired"], errors="coerce").to_numpy(dtype=float)
    t = pd.to_numeric(samples["t_s"], errors="coerce").to_numpy(dtype=float)
    rose = t[1:][np.diff(desired) > 0]
    out = []
    for d in logged:
        seen = rose[(rose + 1.0 < d) & (rose >= d - EVENT_LAG_S)]  # a sample a second before it already showed it
        out.append(float(seen[0]) if len(seen) else float(d))
    return np.array(sorted(out))


def fitted_scenario(scenario: Any, cal: Calibration) -> Any:
    """A copy of a (sized) scenario with the calibration applied, as ``--set`` would before sizing."""
    work = {k: v for k, v in (("work_ms", cal.work_ms), ("warmup_s", cal.warmup_s)) if v is not None}
    model = {k: v for k, v in (("start_delay_s", cal.start_delay_s), ("scrape_phase_s", cal.scrape_phase_s),
                               ("host_overhead_cores", cal.host_overhead_cores), ("idle_cores", cal.idle_cores),
                               ("load_start_s", cal.load_start_s), ("cpu_per_request_ms", cal.cpu_per_request_ms),
                               ("replica_speed_cv", cal.replica_speed_cv)) if v is not None}
    return scenario.model_copy(update={"workload": scenario.workload.model_copy(update=work), "sim": scenario.sim.model_copy(update=model)})


def write_calibration(cal: Calibration, path: str | os.PathLike[str]) -> Path:
    """YAML with the fitted figures and the ``--set`` overrides that apply them."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = {"calibrated_from": cal.run_id, "fitted": asdict(cal), "set": cal.overrides()}
    out.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return out
