"""Figures from run directories (matplotlib, Agg): the side-by-side story of several runs.

One panel per quantity, drawn on a shared time axis (m:ss since the run started):

- ``replicas``: desired (solid) and ready (dashed) per arm, operator scale actions and HPA
  decisions marked;
- ``cpu``: CPU utilisation of the limit (and, dotted, what the HPA saw as % of the request);
- ``rps``: requests served per second against the offered load;
- ``p95``: p95 latency (log scale) with the latency objective;
- ``errors``: failed or timed-out requests per second (total in the legend);
- ``cost``: cumulative cost.

`comparison_figure(runs, path)` stacks every panel; `quantity_figure(runs, quantity, path)` draws
one panel alone, big enough for a projector. The spike window is shaded with its start and end
labelled. Okabe-Ito colours (colour-blind safe), large fonts, units on every axis. Reads only
`scalelab.telemetry.Run` objects.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from scalelab.telemetry import Run

__all__ = ["comparison_figure", "quantity_figure", "QUANTITIES", "OKABE_ITO", "arm_colors"]

#: Okabe & Ito (2008): distinguishable with every common colour-vision deficiency.
OKABE_ITO = ("#E69F00", "#0072B2", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")

#: Quantity -> (chart title, y-axis label with its unit).
QUANTITIES: dict[str, tuple[str, str]] = {
    "replicas": ("Replicas over time (solid: desired, dashed: ready)", "replicas"),
    "cpu": ("CPU utilisation of the replicas", "CPU utilisation (% of limit)"),
    "rps": ("Requests served per second", "requests/s"),
    "p95": ("p95 latency against the objective", "p95 latency (ms, log scale)"),
    "errors": ("Failed or timed-out requests", "errors/s"),
    "cost": ("Cumulative cost (desired replica-seconds x price)", "cumulative cost ($)"),
}

_FONT_SINGLE = {"font.size": 18, "axes.titlesize": 21, "axes.labelsize": 19, "legend.fontsize": 15, "xtick.labelsize": 16, "ytick.labelsize": 16}
_FONT_STACK = {"font.size": 16, "axes.titlesize": 18, "axes.labelsize": 17, "legend.fontsize": 14, "xtick.labelsize": 15, "ytick.labelsize": 15}


def arm_colors(runs: Sequence[Run]) -> list[str]:
    """One Okabe-Ito colour per run, in order (the same in every chart of a report)."""
    return [OKABE_ITO[i % len(OKABE_ITO)] for i in range(len(runs))]


def _window(run: Run) -> tuple[float, float] | None:
    from scalelab.analysis import spike_window_of

    return spike_window_of(run)


def _pyplot(fonts: dict[str, Any]) -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({**fonts, "axes.spines.top": False, "axes.spines.right": False, "lines.linewidth": 3})
    return plt


def comparison_figure(runs: Sequence[Run], path: str | os.PathLike[str], *, title: str | None = None) -> Path:
    """Write the comparison PNG (or SVG/PDF by suffix) of ``runs``, every quantity stacked; returns the path."""
    if not runs:
        raise ValueError("comparison_figure needs at least one run")
    plt = _pyplot(_FONT_STACK)
    names = list(QUANTITIES)
    fig, axes = plt.subplots(len(names), 1, figsize=(18, 4.2 * len(names)), sharex=True, constrained_layout=True)
    for ax, name in zip(axes, names):
        _draw(ax, runs, name, label_spike=ax is axes[0])
        ax.set_title(QUANTITIES[name][0], loc="left")
    axes[-1].set_xlabel(_time_label(runs))
    fig.suptitle(title or _title(runs), fontsize=22, fontweight="bold")
    return _save(fig, path, dpi=80)


def quantity_figure(runs: Sequence[Run], quantity: str, path: str | os.PathLike[str], *, title: str | None = None) -> Path:
    """Write one quantity (a key of `QUANTITIES`) of ``runs`` as its own chart; returns the path."""
    if quantity not in QUANTITIES:
        raise ValueError(f"unknown quantity '{quantity}'; allowed: {', '.join(QUANTITIES)}")
    if not runs:
        raise ValueError("quantity_figure needs at least one run")
    plt = _pyplot(_FONT_SINGLE)
    fig, ax = plt.subplots(figsize=(16, 7.5), constrained_layout=True)
    _draw(ax, runs, quantity, label_spike=True, legend_below=True)
    ax.set_xlabel(_time_label(runs))
    ax.set_title(title or f"{QUANTITIES[quantity][0]}\n{_title(runs)}", loc="left", fontweight="bold")
    return _save(fig, path, dpi=80)


def _save(fig: Any, path: str | os.PathLike[str], *, dpi: int) -> Path:
    import matplotlib.pyplot as plt

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
    return out


# --- panels ------------------------------------------------------------------------------------


def _draw(ax: Any, runs: Sequence[Run], quantity: str, *, label_spike: bool, legend_below: bool = False) -> None:
    colors = arm_colors(runs)
    window = _window(runs[0])
    if window is not None:
        _spike(ax, window, label=label_spike)
    _PANELS[quantity](ax, runs, colors)
    for run, color in zip(runs, colors):
        _mark_manual_actions(ax, run, color, text=quantity == "replicas")
    _time_axis(ax, runs)
    ax.set_ylabel(QUANTITIES[quantity][1])
    ax.grid(True, alpha=0.35)
    if legend_below:
        ax.legend(loc="upper left", bbox_to_anchor=(0.0, -0.16), ncol=2 if len(runs) > 1 else 3, framealpha=0.95)
    else:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), framealpha=0.95)


def _replicas(ax: Any, runs: Sequence[Run], colors: list[str]) -> None:
    for run, color in zip(runs, colors):
        s = run.samples
        ax.step(s["t_s"], s["replicas_desired"], where="post", color=color, lw=3.5, label=f"{run.label}: desired")
        ax.step(s["t_s"], s["replicas_ready"], where="post", color=color, lw=2.5, ls="--", label=f"{run.label}: ready")
        _mark_hpa_decisions(ax, run, color)
    ax.set_ylim(bottom=0, top=max(float(r.samples["replicas_desired"].max()) for r in runs) * 1.3 + 0.5)
    ax.yaxis.get_major_locator().set_params(integer=True)


def _cpu(ax: Any, runs: Sequence[Run], colors: list[str]) -> None:
    for run, color in zip(runs, colors):
        s = run.samples
        ax.plot(s["t_s"], _smooth(s["cpu_util_pct"]), color=color, label=run.label)
        hpa = pd.to_numeric(s["hpa_util_pct"], errors="coerce")
        if hpa.notna().any():
            ax.step(s["t_s"], hpa, where="post", color=color, lw=2, ls=":", label=f"{run.label}: HPA saw (% of request)")
    ax.set_ylim(bottom=0)


def _rps(ax: Any, runs: Sequence[Run], colors: list[str]) -> None:
    first = runs[0].samples
    ax.plot(first["t_s"], pd.to_numeric(first["offered_load"], errors="coerce"), color="0.3", lw=2, ls="--", label="offered load")
    for run, color in zip(runs, colors):
        ax.plot(run.samples["t_s"], _smooth(run.samples["rps"]), color=color, label=f"{run.label}: served")
    ax.set_ylim(bottom=0)


def _p95(ax: Any, runs: Sequence[Run], colors: list[str]) -> None:
    objective = None
    for run, color in zip(runs, colors):
        p95 = pd.to_numeric(run.samples["p95_ms"], errors="coerce")
        seen = p95.notna()  # seconds with no completed request have no p95: join the line across them
        ax.plot(run.samples["t_s"][seen], p95[seen], color=color, label=run.label)
        objective = objective or run.manifest.get("latency_objective_ms")
    if objective:
        ax.axhline(float(objective), color="#000000", lw=2.5, ls=(0, (6, 3)), label=f"objective {float(objective):.0f} ms")
    ax.set_yscale("log")


def _errors(ax: Any, runs: Sequence[Run], colors: list[str]) -> None:
    for run, color in zip(runs, colors):
        errors = pd.to_numeric(run.samples["errors"], errors="coerce").fillna(0)
        ax.plot(run.samples["t_s"], _smooth(errors), color=color, label=f"{run.label}: {errors.sum():,.0f} in total")
    ax.set_ylim(bottom=0)


def _cost(ax: Any, runs: Sequence[Run], colors: list[str]) -> None:
    for run, color in zip(runs, colors):
        cost = pd.to_numeric(run.samples["cost_usd_cum"], errors="coerce")
        final = cost.dropna().iloc[-1] if cost.notna().any() else 0.0
        ax.plot(run.samples["t_s"], cost, color=color, label=f"{run.label}: ${final:,.3f}")
    ax.set_ylim(bottom=0)


_PANELS: dict[str, Callable[[Any, Sequence[Run], list[str]], None]] = {
    "replicas": _replicas,
    "cpu": _cpu,
    "rps": _rps,
    "p95": _p95,
    "errors": _errors,
    "cost": _cost,
}


# --- annotations and axes ----------------------------------------------------------------------


def _spike(ax: Any, window: tuple[float, float], *, label: bool) -> None:
    start, end = window
    ax.axvspan(start, end, color="0.9", zorder=0, label="spike window")
    for x, text, dy in ((start, f"spike starts {_mmss(start)}", -4), (end, f"spike ends {_mmss(end)}", -30)):
        ax.axvline(x, color="0.45", lw=1.5, zorder=1)
        if label:
            ax.annotate(text, (x, 1.0), xycoords=("data", "axes fraction"), xytext=(4, dy), textcoords="offset points",
                        va="top", fontsize="medium", color="0.25", fontweight="bold",
                        bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.8})


def _mark_manual_actions(ax: Any, run: Run, color: str, *, text: bool) -> None:
    ev = run.events
    if ev is None or len(ev) == 0:
        return
    for _, row in ev[ev["kind"] == "scale"].iterrows():
        x = float(row["t_s"])
        ax.axvline(x, color=color, lw=2, ls="-.", zorder=2)
        if text:
            who = "operator" if str(row.get("source", "")) in ("manual-plan", "live", "") else str(row["source"])
            ax.annotate(f"{who}: scale to {int(row['replicas'])} at {_mmss(x)}", (x, float(row["replicas"])), xytext=(8, 10),
                        textcoords="offset points", color=color, fontsize="medium", fontweight="bold")


def _mark_hpa_decisions(ax: Any, run: Run, color: str) -> None:
    ev = run.events
    if ev is None or len(ev) == 0:
        return
    hpa = ev[ev["kind"] == "hpa_rescale"].dropna(subset=["replicas"])
    if hpa.empty:
        return
    ax.scatter(hpa["t_s"], hpa["replicas"], marker="v", s=160, color=color, edgecolors="black", zorder=5,
               label=f"{run.label}: HPA decision ({len(hpa)})")
    for i, (_, row) in enumerate(hpa.head(8).iterrows()):
        ax.annotate(f"HPA→{int(row['replicas'])}", (float(row["t_s"]), float(row["replicas"])), xytext=(-10, 8),
                    textcoords="offset points", ha="right", color=color, fontsize="small", fontweight="bold")


def _time_axis(ax: Any, runs: Sequence[Run]) -> None:
    from matplotlib.ticker import FuncFormatter, MultipleLocator

    span = _span_s(runs)
    for step in (15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 10800):
        if span / step <= 12:
            break
    ax.xaxis.set_major_locator(MultipleLocator(step))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: _mmss(x)))
    ax.set_xlim(left=0, right=span)


def _span_s(runs: Sequence[Run]) -> float:
    spans = [float(r.samples["t_s"].max()) for r in runs if len(r.samples)]
    return max(spans) if spans else 60.0


def _time_label(runs: Sequence[Run]) -> str:
    return "time since start (h:mm)" if _span_s(runs) > 3 * 3600 else "time since start (min:s)"


def _mmss(seconds: float) -> str:
    """``1:30`` (min:s) below an hour, ``13:00h`` (h:mm) above."""
    total = int(round(seconds))
    if total >= 3600:
        return f"{total // 3600}:{total % 3600 // 60:02d}h"
    return f"{total // 60}:{total % 60:02d}"


def _smooth(series: pd.Series) -> pd.Series:
    """A centred mean over 5 s (or 1/300 of a long run): per-second counts of a few requests are noisy to read."""
    window = max(5, len(series) // 300)
    return pd.to_numeric(series, errors="coerce").rolling(window, center=True, min_periods=1).mean()


def _title(runs: Sequence[Run]) -> str:
    scenario = runs[0].manifest.get("scenario", "")
    kinds = {r.manifest.get("platform") for r in runs}
    return f"{scenario}: " + " vs ".join(r.label for r in runs) + (" (simulated)" if kinds == {"sim"} else "")
