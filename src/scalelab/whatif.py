"""What if: sweep scenario settings in the simulator and weigh cost against the latency objective.

`sweep("classroom-spike", "kubernetes-hpa", {"target_cpu_pct": [30, 50, 70, 90]})` simulates
every combination of the values (a grid), writes each run to a temporary directory, summarises
it with `analysis.summarize` and returns one row per combination. Short keys are fields of the
arm's scaler (``target_cpu_pct``, ``max_replicas``,
``behavior.scale_down.stabilization_window_s``); keys that start with a scenario field
(``load.factor``, ``workload.work_ms``, ``arms.compose-manual.replicas``) are used as written.
`sweep_figure` draws the trade-off: cost on one axis, seconds over the objective on the other.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from scalelab import figstyle
from scalelab.analysis import summarize
from scalelab.errors import ScenarioError
from scalelab.figstyle import arm_color, pyplot, role_of
from scalelab.scenario import Scenario
from scalelab.sim import prepare_scenario, simulate_runs

__all__ = ["sweep", "parse_vary", "full_key", "sweep_figure", "render_sweep", "SWEEP_COLUMNS"]

#: Column -> heading of the printed sweep.
SWEEP_COLUMNS: dict[str, str] = {
    "setting": "setting",
    "peak_p95_ms": "peak p95 ms",
    "seconds_over_objective": "s over SLO",
    "errors": "errors",
    "cost_usd": "cost $",
    "first_scale_up_s": "up after spike s",
    "scale_down_s": "down after spike s",
    "peak_replicas": "peak replicas",
}


def full_key(key: str, arm: str) -> str:
    """``target_cpu_pct`` -> ``arms.<arm>.scaler.target_cpu_pct``; scenario fields stay as written."""
    head = key.split(".", 1)[0]
    return key if head in Scenario.model_fields else f"arms.{arm}.scaler.{key}"


def parse_vary(items: Sequence[str]) -> dict[str, list[str]]:
    """``["target_cpu_pct=30,50,70", "load.factor=5,10"]`` -> ``{key: [values]}`` (values stay text)."""
    grid: dict[str, list[str]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        values = [v.strip() for v in raw.split(",") if v.strip()]
        if not sep or not key.strip() or not values:
            raise ScenarioError(f"--vary '{item}': expected KEY=V1,V2,...", fix="for example --vary target_cpu_pct=30,50,70,90",
                                lab="05-what-if-with-the-simulator")
        grid[key.strip()] = values
    return grid


def sweep(
    scenario: str | os.PathLike[str],
    arm: str,
    vary: Mapping[str, Sequence[Any]],
    *,
    seed: int | None = None,
    cpu_budget: float | None = None,
    compare_with: Sequence[str] = (),
) -> pd.DataFrame:
    """Simulate ``arm`` for every combination of ``vary``; one row per combination.

    ``compare_with`` adds other arms of the scenario as written (e.g. ``compose-manual``), so
    the sweep can be read against them. Columns: ``setting``, ``arm``, one per varied key, then
    the figures of `analysis.summarize`.
    """
    keys = list(vary)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="scalelab-whatif-") as tmp:
        for combo in itertools.product(*(list(vary[k]) for k in keys)):
            overrides = [f"{full_key(k, arm)}={v}" for k, v in zip(keys, combo)]
            setting = ", ".join(f"{_short(k)}={v}" for k, v in zip(keys, combo)) or "as written"
            rows.append(_one(scenario, arm, overrides, setting, tmp, seed, cpu_budget) | dict(zip(keys, combo)))
        for other in compare_with:
            rows.append(_one(scenario, other, [], f"{other} as written", tmp, seed, cpu_budget))
    return pd.DataFrame(rows)


def _short(key: str) -> str:
    """``behavior.scale_down.stabilization_window_s`` -> ``scale_down.stabilization_window_s`` (for labels)."""
    return ".".join(key.split(".")[-2:])


def _one(scenario: str | os.PathLike[str], arm: str, overrides: list[str], setting: str, tmp: str,
         seed: int | None, cpu_budget: float | None) -> dict[str, Any]:
    sc = prepare_scenario(scenario, cpu_budget=cpu_budget, seed=seed, overrides=overrides)
    run = simulate_runs(sc, tmp, arms=[arm], seed=seed)[0]
    summary = summarize(run)
    return {"setting": setting, "arm": arm, "role": role_of(run),
            **{k: v for k, v in summary.items() if k not in ("run_id", "label", "arm", "platform")}}


def render_sweep(table: pd.DataFrame, *, title: str | None = None, width: int = 120) -> str:
    """The sweep as a plain-text rich table."""
    import io

    from rich.console import Console
    from rich.table import Table

    out = Table(title=title)
    for key, heading in SWEEP_COLUMNS.items():
        out.add_column(heading, justify="left" if key == "setting" else "right", no_wrap=key == "setting")
    digits = {"cost_usd": 3, "first_scale_up_s": 1, "scale_down_s": 1}
    for _, row in table.iterrows():
        out.add_row(*(_cell(row.get(k), digits.get(k, 0)) for k in SWEEP_COLUMNS))
    buffer = io.StringIO()
    Console(file=buffer, width=width, color_system=None, force_terminal=False).print(out)
    return buffer.getvalue().rstrip() + "\n"


def _cell(value: Any, digits: int) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "never"
    if isinstance(value, (int, float)):
        return f"{value:,.{digits}f}"
    return str(value)


def sweep_figure(table: pd.DataFrame, path: str | os.PathLike[str], *, title: str | None = None) -> Path:
    """The trade-off chart of a sweep: cost ($) across, seconds over the latency objective up.

    Every point is simulated, so every colour is its arm role's lighter shade (`scalelab.figstyle`).
    When the swept setting does not change the cost (e.g. ``load.factor`` for a fixed plan), the
    points would sit on one vertical line: the chart then puts the setting itself across.
    """
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(16, 9), layout="constrained")
    swept = table[~table["setting"].str.endswith("as written")]
    others = table[table["setting"].str.endswith("as written")]
    costs = table["cost_usd"].astype(float)
    flat_cost = len(swept) > 1 and float(costs.max() - costs.min()) < 0.0005
    xs = list(range(len(swept))) if flat_cost else list(swept["cost_usd"].astype(float))
    role = str(swept["role"].iloc[0]) if len(swept) and "role" in swept else "other"
    ax.plot(xs, swept["seconds_over_objective"], "-o", color=arm_color(role, simulated=True), lw=3, ms=16, mec="black",
            label=f"{swept['arm'].iloc[0] if len(swept) else ''}: each setting (label: setting, errors)")
    span = (max(xs) - min(xs)) if xs else 0.0
    for x, (_, row) in zip(xs, swept.iterrows()):
        right_half = span > 0 and x > min(xs) + span / 2
        ax.annotate(f"{row['setting']}\n{row['errors']:,.0f} errors", (x, row["seconds_over_objective"]),
                    xytext=(-14 if right_half else 14, 12), textcoords="offset points", ha="right" if right_half else "left",
                    va="bottom", color="#000000", fontsize=16)
    if not flat_cost:
        for _, row in others.iterrows():
            ax.plot([row["cost_usd"]], [row["seconds_over_objective"]], marker="*", ms=34, mec="black", ls="none",
                    color=arm_color(str(row.get("role", "other")), simulated=True),
                    label=f"{row['setting']} ({row['errors']:,.0f} errors)")
        ax.set_xlabel("cost of the run ($, desired replica-seconds x price)")
    else:
        ax.set_xticks(xs, [str(s).split("=")[-1] for s in swept["setting"]])
        ax.set_xlabel(f"{str(swept['setting'].iloc[0]).split('=')[0]} (every setting costs ${float(costs.iloc[0]):.3f})")
    ax.set_ylabel("seconds over the latency objective (s)")
    ax.set_ylim(bottom=0, top=max(1.0, float(table["seconds_over_objective"].max())) * 1.45)
    ax.margins(x=0.12)
    ax.grid(True, alpha=0.35)
    ax.legend(loc="upper left", framealpha=0.95)
    default = "What if: cost against time over the latency objective (lower left is better)"
    if flat_cost:
        default = "What if: the setting against time over the latency objective (lower is better)"
    ax.set_title(title or default, loc="left", fontweight="bold")
    return figstyle.save_figure(fig, path)
