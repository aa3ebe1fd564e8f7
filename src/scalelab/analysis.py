"""What a run measured, in a few numbers: reads only run directories (`scalelab.telemetry`).

`summarize(run)` gives one arm's figures (peak p95, seconds over the latency objective, errors,
replica-hours, cost, reaction times around the spike, peak replicas, scale actions); `summary_table(runs)` puts
several side by side; `render_summary` prints it as a rich table; `compare(real, sim)` says how
close a simulated run came to a real one. Works the same for real and simulated runs.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from scalelab.load.profiles import spike_window
from scalelab.telemetry import Run

__all__ = [
    "summarize",
    "summary_table",
    "render_summary",
    "summary_rows",
    "compare",
    "cost_per_day",
    "is_day_run",
    "render_daily_cost",
    "spike_window_of",
    "SUMMARY_COLUMNS",
    "high_load_seconds",
    "scale_actions",
    "spread_index",
    "compare_table",
    "render_compare",
]

#: Column -> heading of the printed summary.
SUMMARY_COLUMNS: dict[str, str] = {
    "label": "arm",
    "peak_p95_ms": "peak p95 ms",
    "seconds_over_objective": "s over SLO",
    "errors": "errors",
    "replica_hours": "replica-h",
    "cost_usd": "cost $",
    "first_scale_up_s": "up after spike s",
    "scale_down_s": "down after spike s",
    "peak_replicas": "peak replicas",
    "scale_actions": "scale actions",
}


def spike_window_of(run: Run) -> tuple[float, float] | None:
    scenario = run.scenario
    return spike_window(scenario.load, scenario.duration_s)


def summarize(run: Run) -> dict[str, Any]:
    """One run's figures. Reaction times are None when there is no spike or it never happened."""
    s = run.samples
    objective = float(run.manifest.get("latency_objective_ms") or run.scenario.latency_objective_ms)
    dt = _step_s(s)
    desired = s["replicas_desired"].astype(float)
    replica_seconds = float(desired.sum() * dt)
    p95 = pd.to_numeric(s["p95_ms"], errors="coerce")
    window = spike_window_of(run)
    up = down = None
    if window is not None:
        up, down = _reaction_times(s, window)
    high = high_load_seconds(s)
    return {
        "run_id": run.manifest.get("run_id", run.path.name),
        "label": run.label,
        "arm": run.arm,
        "platform": run.manifest.get("platform"),
        "peak_p95_ms": float(p95.max()) if p95.notna().any() else None,
        "seconds_over_objective": float((p95 > objective).sum() * dt),
        "latency_objective_ms": objective,
        "errors": float(pd.to_numeric(s["errors"], errors="coerce").fillna(0).sum()),
        "replica_hours": replica_seconds / 3600.0,
        "cost_usd": _cost_usd(s),
        "first_scale_up_s": up,
        "scale_down_s": down,
        "peak_replicas": int(desired.max()) if len(desired) else 0,
        "scale_actions": scale_actions(s),
        "duration_s": _duration_s(s, dt),
        "p95_high_load_ms": _median(p95[high]),
        "spread_jain": spread_index(run),
    }


def scale_actions(samples: pd.DataFrame) -> int:
    """How many times the desired replica count changed during the run: one per decision that moved it, whoever
    made it (operator, home-made autoscaler, HPA). A decision that asked for the count already set is not an action."""
    desired = pd.to_numeric(samples["replicas_desired"], errors="coerce").dropna()
    return int((desired.diff().fillna(0) != 0).sum())


def high_load_seconds(samples: pd.DataFrame) -> pd.Series:
    """Seconds of high load, for any profile: the offered load in the upper half of its range
    (``>= low + (high - low) / 2``) during the load phase. A flat profile is high load throughout."""
    offered = pd.to_numeric(samples["offered_load"], errors="coerce")
    phase = samples["phase"].astype(str) if "phase" in samples else pd.Series("load", index=samples.index)
    loaded = (phase == "load") & offered.notna()
    if not loaded.any():
        return pd.Series(False, index=samples.index)
    low, top = float(offered[loaded].min()), float(offered[loaded].max())
    return loaded & (offered >= low + (top - low) / 2.0)


def _median(values: pd.Series) -> float | None:
    values = pd.to_numeric(values, errors="coerce").dropna()
    return float(values.median()) if len(values) else None


def spread_index(run: Run) -> float | None:
    """The run's spread in one figure: Jain's index per second weighted by the requests served,
    over seconds with two or more ready replicas (docs/spread.md). None without per-replica records."""
    spread = run.spread
    if not len(spread):
        return None
    s = run.samples
    jain = pd.to_numeric(spread["spread_jain"], errors="coerce").reindex(s["t_s"].to_numpy()).to_numpy(dtype=float)
    weight = pd.to_numeric(s["rps"], errors="coerce").fillna(0).to_numpy(dtype=float) * (s["replicas_ready"].fillna(0).to_numpy() >= 2)
    ok = ~np.isnan(jain) & (weight > 0)
    if not ok.any():
        return None
    return float((jain[ok] * weight[ok]).sum() / weight[ok].sum())


def _cost_usd(samples: pd.DataFrame) -> float:
    """The run's cost: the last recorded cumulative cost."""
    cost = pd.to_numeric(samples["cost_usd_cum"], errors="coerce").dropna()
    return float(cost.iloc[-1]) if len(cost) else 0.0


def _duration_s(samples: pd.DataFrame, step_s: float | None = None) -> float:
    """Seconds the samples cover (first to last, plus one step)."""
    if not len(samples):
        return 0.0
    return float(samples["t_s"].iloc[-1] - samples["t_s"].iloc[0] + (_step_s(samples) if step_s is None else step_s))


def _step_s(samples: pd.DataFrame) -> float:
    if len(samples) < 2:
        return 1.0
    return float(samples["t_s"].diff().median())


def _reaction_times(s: pd.DataFrame, window: tuple[float, float]) -> tuple[float | None, float | None]:
    """Seconds from spike start to the first rise of desired replicas, and from spike end to the
    first fall below the count at spike end."""
    start, end = window
    t = s["t_s"].to_numpy(dtype=float)
    desired = s["replicas_desired"].to_numpy(dtype=float)
    before = desired[t < start]
    base = before[-1] if len(before) else desired[0]
    after_start = (t >= start) & (desired > base)
    up = float(t[after_start][0] - start) if after_start.any() else None
    at_end = desired[t <= end]
    level = at_end[-1] if len(at_end) else desired[0]
    after_end = (t >= end) & (desired < level)
    down = float(t[after_end][0] - end) if after_end.any() else None
    return up, down


def summary_table(runs: Sequence[Run]) -> pd.DataFrame:
    """One row per run, indexed by its label."""
    rows = [summarize(r) for r in runs]
    return pd.DataFrame(rows).set_index("label", drop=False)


def _fmt(value: Any, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "never"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


_DIGITS = {"peak_p95_ms": 0, "seconds_over_objective": 0, "errors": 0, "replica_hours": 3, "cost_usd": 3, "first_scale_up_s": 1, "scale_down_s": 1}


def summary_rows(table: pd.DataFrame) -> list[list[str]]:
    """The summary's cells as text, one list per run in `SUMMARY_COLUMNS` order (terminal and HTML)."""
    return [[_fmt(row.get(key), _DIGITS.get(key, 0)) for key in SUMMARY_COLUMNS] for _, row in table.iterrows()]


def render_summary(table: pd.DataFrame, *, width: int = 140, title: str | None = None) -> str:
    """The summary as a plain-text rich table (what `scalelab sim` and `demo` print)."""
    from rich.console import Console
    from rich.table import Table

    rich_table = Table(title=title)
    for key, heading in SUMMARY_COLUMNS.items():
        if key == "label":
            rich_table.add_column(heading, no_wrap=True)
        else:
            rich_table.add_column(heading, justify="right", max_width=11)
    for cells in summary_rows(table):
        rich_table.add_row(*cells)
    buffer = io.StringIO()
    Console(file=buffer, width=width, color_system=None, force_terminal=False, legacy_windows=False).print(rich_table)
    return buffer.getvalue().rstrip() + "\n"


def compare(real: Run, sim: Run) -> dict[str, Any]:
    """How close a simulated run came to a real one, aligned on ``t_s``.

    ``replicas_within_1_share``: share of seconds where simulated desired replicas are within ±1
    of the real ones; differences are sim − real.
    """
    a = real.samples[["t_s", "replicas_desired"]].copy()
    b = sim.samples[["t_s", "replicas_desired"]].copy()
    a["t"] = a["t_s"].round().astype(int)
    b["t"] = b["t_s"].round().astype(int)
    joined = a.drop_duplicates("t").merge(b.drop_duplicates("t"), on="t", suffixes=("_real", "_sim"))
    if joined.empty:
        share = None
    else:
        share = float(((joined["replicas_desired_sim"] - joined["replicas_desired_real"]).abs() <= 1).mean())
    r, s = summarize(real), summarize(sim)

    def diff(key: str) -> float | None:
        if r[key] is None or s[key] is None:
            return None
        return float(s[key] - r[key])

    return {
        "real": r["run_id"],
        "sim": s["run_id"],
        "seconds_compared": int(len(joined)),
        "replicas_within_1_share": share,
        "first_scale_up_diff_s": diff("first_scale_up_s"),
        "scale_down_diff_s": diff("scale_down_s"),
        "cost_diff_usd": diff("cost_usd"),
        "cost_real_usd": r["cost_usd"],
        "cost_sim_usd": s["cost_usd"],
        "peak_p95_diff_ms": diff("peak_p95_ms"),
    }


def is_day_run(run: Run) -> bool:
    """A run of the ``day`` load profile: a whole day, simulated at one-second steps or compressed."""
    return run.scenario.load.profile == "day"


#: The rows of `compare_table`: key of `summarize` (or of `compare`) -> heading, digits.
COMPARE_ROWS: dict[str, tuple[str, int]] = {
    "replicas_within_1_share": ("seconds where sim replicas are within +-1 of real (%)", 1),
    "first_scale_up_s": ("first scale-up after the spike start (s)", 1),
    "scale_down_s": ("first scale-down after the spike end (s)", 1),
    "peak_replicas": ("peak replicas", 0),
    "seconds_over_objective": ("seconds over the latency objective", 0),
    "errors": ("errors", 0),
    "p95_high_load_ms": ("p95 during high load, median of seconds (ms)", 0),
    "cost_usd": ("cost ($)", 4),
    "spread_jain": ("spread: Jain index, request-weighted (1 = even)", 2),
}


def compare_table(real: Run, sim: Run) -> pd.DataFrame:
    """`compare` as a table: one row per figure, real and simulated side by side, sim - real.

    Works for any profile: reaction times are measured from the profile's spike window when it has
    one (else "never"), latency from its high-load seconds (`high_load_seconds`).
    """
    c = compare(real, sim)
    r, s = summarize(real), summarize(sim)
    rows = []
    for key, (heading, digits) in COMPARE_ROWS.items():
        if key == "replicas_within_1_share":
            share = c["replicas_within_1_share"]
            rows.append({"figure": heading, "real": None, "sim": None, "sim - real": None,
                         "agreement": None if share is None else round(100 * share, digits)})
            continue
        a, b = r.get(key), s.get(key)
        d = None if a is None or b is None else b - a
        rows.append({"figure": heading, "real": a, "sim": b, "sim - real": d, "agreement": None})
    return pd.DataFrame(rows)


def render_compare(table: pd.DataFrame, *, width: int = 120, title: str | None = None) -> str:
    """The comparison table as plain text (what `scalelab compare` prints)."""
    from rich.console import Console
    from rich.table import Table

    digits = {heading: d for heading, d in COMPARE_ROWS.values()}
    t = Table(title=title)
    t.add_column("figure", no_wrap=True)
    for heading in ("real", "simulated", "sim - real"):
        t.add_column(heading, justify="right")
    for _, row in table.iterrows():
        n = digits.get(row["figure"], 1)
        if row["agreement"] is not None and row["agreement"] == row["agreement"]:
            t.add_row(row["figure"], "", "", f"{row['agreement']:.{n}f}")
            continue
        cells = [_cell_text(row[c], n, signed=c == "sim - real") for c in ("real", "sim", "sim - real")]
        t.add_row(row["figure"], *cells)
    buffer = io.StringIO()
    Console(file=buffer, width=width, color_system=None, force_terminal=False, legacy_windows=False).print(t)
    return buffer.getvalue().rstrip() + "\n"


def _cell_text(value: Any, digits: int, *, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:+,.{digits}f}" if signed else f"{value:,.{digits}f}"


def cost_per_day(run: Run) -> dict[str, Any]:
    """$/day (and $/year) of a run of the ``day`` profile: its replica-seconds x price, scaled from the
    run's length to 24 hours (1 for a simulated day, more for a recorded compressed day).

    A spike run is refused: multiplying a 4-minute spike up to 24 hours prices a day in which the
    spike repeats hundreds of times. Per-day figures come from a day (`scalelab sim day`).
    """
    if not is_day_run(run):
        from scalelab.errors import RunFormatError

        raise RunFormatError(
            f"{run.label} is a '{run.scenario.load.profile}' run of {run.scenario.duration_s:.0f} s: its cost does not scale to a day",
            fix="compute per-day cost from a day: `scalelab sim day` (or a recorded run of a scenario with load.profile: day)",
            lab="04-compare-and-cost",
        )
    cost, duration = _cost_usd(run.samples), _duration_s(run.samples) or 1.0
    per_day = cost * 86400.0 / duration
    return {"label": run.label, "cost_usd": cost, "duration_s": duration, "usd_per_day": per_day, "usd_per_year": per_day * 365.0}


def render_daily_cost(runs: Sequence[Run], *, width: int = 120) -> str:
    """$/day and $/year per run of the ``day`` profile (see `cost_per_day`), and each one's saving against the most expensive."""
    from rich.console import Console
    from rich.table import Table

    rows = [cost_per_day(r) for r in runs]
    top = max((r["usd_per_day"] for r in rows), default=0.0)
    table = Table(title="cost over a day")
    for heading in ("arm", "$/day", "$/year", "saves vs most expensive ($/year)"):
        table.add_column(heading, justify="left" if heading == "arm" else "right")
    for r in rows:
        table.add_row(r["label"], f"{r['usd_per_day']:,.2f}", f"{r['usd_per_year']:,.0f}", f"{(top - r['usd_per_day']) * 365:,.0f}")
    buffer = io.StringIO()
    Console(file=buffer, width=width, color_system=None, force_terminal=False).print(table)
    return buffer.getvalue().rstrip() + "\n"
