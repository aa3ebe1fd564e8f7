"""Figures from run directories (matplotlib, Agg): the side-by-side story of several runs.

`comparison_figure(runs, path)` stacks, on one time axis: replicas (desired solid, ready
dashed), CPU utilisation, requests/s, p95 latency with the objective, cumulative cost. The spike
window is shaded and manual scale actions are marked. Okabe-Ito colours (colour-blind safe),
large fonts, units on every axis. Reads only `scalelab.telemetry.Run` objects.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from scalelab.telemetry import Run

__all__ = ["comparison_figure", "OKABE_ITO"]

#: Okabe & Ito (2008): distinguishable with every common colour-vision deficiency.
OKABE_ITO = ("#E69F00", "#0072B2", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")


def _window(run: Run) -> tuple[float, float] | None:
    from scalelab.analysis import spike_window_of

    return spike_window_of(run)


def comparison_figure(runs: Sequence[Run], path: str | os.PathLike[str], *, title: str | None = None) -> Path:
    """Write the comparison PNG (or SVG/PDF by suffix) of ``runs``; returns the path."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    if not runs:
        raise ValueError("comparison_figure needs at least one run")
    plt.rcParams.update({"font.size": 14, "axes.titlesize": 15, "axes.labelsize": 14, "legend.fontsize": 12})
    fig, axes = plt.subplots(5, 1, figsize=(17, 17), sharex=True, constrained_layout=True)
    ax_rep, ax_cpu, ax_rps, ax_p95, ax_cost = axes
    objective = None
    for i, run in enumerate(runs):
        color = OKABE_ITO[i % len(OKABE_ITO)]
        s = run.samples
        minutes = s["t_s"] / 60.0
        label = run.label
        ax_rep.step(minutes, s["replicas_desired"], where="post", color=color, lw=2.5, label=f"{label}: desired")
        ax_rep.step(minutes, s["replicas_ready"], where="post", color=color, lw=2, ls="--", label=f"{label}: ready")
        ax_cpu.plot(minutes, _smooth(s["cpu_util_pct"]), color=color, lw=2, label=label)
        hpa = pd.to_numeric(s["hpa_util_pct"], errors="coerce")
        if hpa.notna().any():
            ax_cpu.step(minutes, hpa, where="post", color=color, lw=1.5, ls=":", label=f"{label}: HPA sees (% of request)")
        ax_rps.plot(minutes, _smooth(s["rps"]), color=color, lw=2, label=f"{label}: served")
        ax_p95.plot(minutes, pd.to_numeric(s["p95_ms"], errors="coerce"), color=color, lw=2, label=label)
        ax_cost.plot(minutes, s["cost_usd_cum"], color=color, lw=2.5, label=label)
        _mark_manual_actions(ax_rep, run, color)
        objective = objective or run.manifest.get("latency_objective_ms")
    first = runs[0].samples
    ax_rps.plot(first["t_s"] / 60.0, first["offered_load"], color="0.35", lw=1.5, ls="--", label="offered load")
    if objective:
        ax_p95.axhline(float(objective), color="0.2", lw=1.5, ls="--", label=f"objective {float(objective):.0f} ms")
    ax_p95.set_yscale("log")
    window = _window(runs[0])
    for ax in axes:
        if window is not None:
            ax.axvspan(window[0] / 60.0, window[1] / 60.0, color="0.88", zorder=0, label="spike window")
        ax.grid(True, alpha=0.3)
    ax_rep.set_ylabel("replicas")
    ax_rep.set_ylim(bottom=0)
    ax_cpu.set_ylabel("CPU utilisation (%)")
    ax_cpu.set_ylim(bottom=0)
    ax_rps.set_ylabel("requests/s")
    ax_p95.set_ylabel("p95 latency (ms, log)")
    ax_cost.set_ylabel("cumulative cost ($)")
    ax_cost.set_xlabel("time since start (minutes)")
    for ax in axes:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), framealpha=0.9)
    ax_rep.set_title(title or _title(runs))
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def _smooth(series: pd.Series) -> pd.Series:
    """A 5-second centred mean: per-second counts of a few requests are noisy to read."""
    return pd.to_numeric(series, errors="coerce").rolling(5, center=True, min_periods=1).mean()


def _mark_manual_actions(ax: object, run: Run, color: str) -> None:
    ev = run.events
    if ev is None or len(ev) == 0:
        return
    manual = ev[(ev["kind"] == "scale")]
    for _, row in manual.iterrows():
        x = float(row["t_s"]) / 60.0
        ax.axvline(x, color=color, lw=1.5, ls="-.")  # type: ignore[attr-defined]
        ax.annotate(  # type: ignore[attr-defined]
            f"operator: scale to {int(row['replicas'])}", (x, float(row["replicas"])), xytext=(6, 8), textcoords="offset points",
            color=color, fontsize=12, fontweight="bold",
        )


def _title(runs: Sequence[Run]) -> str:
    scenario = runs[0].manifest.get("scenario", "")
    kinds = {r.manifest.get("platform") for r in runs}
    return f"{scenario}: " + " vs ".join(r.label for r in runs) + (" (simulated)" if kinds == {"sim"} else "")
