"""Figures from run directories (matplotlib, Agg): the side-by-side story of several runs.

One panel per quantity, drawn on a shared time axis (m:ss since the run started):

- ``replicas``: desired (solid) and ready (dashed) per arm, operator scale actions (dash-dot,
  labelled above the data) and HPA decisions (triangles);
- ``cpu``: CPU as % of the limit of the *running* replicas, ready or not (`scalelab.cpuview`),
  what the HPA saw (dotted) and its target (thin dashed), both on that same denominator;
- ``rps``: requests served per second against the offered load;
- ``p95``: p95 latency (log scale) with the latency objective;
- ``errors``: failed or timed-out requests per second (total in the legend);
- ``cost``: cumulative cost.

`quantity_figure(runs, quantity, path)` draws one panel alone as a 1920 x 1080 image;
`comparison_figure(runs, path)` puts all six on one 1920 x 1080 image; `story_slide` (in
`scalelab.slides`) draws the projector slide. The spike window is shaded, and its start and end
are labelled on the top edge, outside the data. A rollout (`scalelab.rollout`) is shaded in its
arm's colour from its start to its end, hatched; a fault (`scalelab.faults`) is a dotted line
in the arm's colour. Colours come from the arm's role
(`scalelab.figstyle`), the same in every figure of the kit. Reads only `scalelab.telemetry.Run` objects.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from scalelab import cpuview, figstyle
from scalelab.telemetry import Run

__all__ = ["comparison_figure", "quantity_figure", "QUANTITIES", "arm_colors", "arm_labels", "draw_panel", "figure_legend", "time_axis_label",
           "rollout_windows", "fault_times"]

#: Quantity -> (chart title, y-axis label with its unit, short y-axis label for small panels).
QUANTITIES: dict[str, tuple[str, str, str]] = {
    "replicas": ("Replicas (solid: desired, dashed: ready)", "replicas", "replicas"),
    "cpu": ("CPU of the running replicas, ready or not", cpuview.AXIS_LABEL, "% of limit"),
    "rps": ("Requests served per second", "requests/s", "requests/s"),
    "p95": ("p95 latency against the objective", "p95 latency (ms, log scale)", "p95 (ms)"),
    "errors": ("Failed or timed-out requests", "errors/s", "errors/s"),
    "cost": ("Cumulative cost (desired replica-seconds x price)", "cumulative cost ($)", "cost ($)"),
}

#: Panel titles on the one-screen comparison (the full titles do not fit a third of 1920 px).
_GRID_TITLES = {"replicas": "Replicas (solid: desired)", "cpu": "CPU (% of limit, running)", "rps": "Requests served/s",
                "p95": "p95 latency (ms)", "errors": "Errors/s", "cost": "Cumulative cost ($)"}
_GRID_FONTS = {"font.size": 16, "axes.titlesize": 18, "axes.labelsize": 16, "legend.fontsize": 16, "xtick.labelsize": 15, "ytick.labelsize": 15}


def arm_colors(runs: Sequence[Run]) -> list[str]:
    """One colour per run, by its arm's role (the same in every chart of the kit)."""
    return figstyle.run_colors(runs)


def arm_labels(runs: Sequence[Run]) -> list[str]:
    """Legend names: the run label, without " (sim)" when every run is simulated (the title says it once)."""
    all_sim = all(r.manifest.get("platform") == "sim" for r in runs)
    return [r.arm if all_sim else r.label for r in runs]


def comparison_figure(runs: Sequence[Run], path: str | os.PathLike[str], *, title: str | None = None) -> Path:
    """Write all six quantities of ``runs`` on one 16:9 image (PNG, or SVG/PDF by suffix); returns the path."""
    if not runs:
        raise ValueError("comparison_figure needs at least one run")
    plt = figstyle.pyplot(_GRID_FONTS)
    fig, axes = plt.subplots(2, 3, figsize=figstyle.SLIDE_INCHES, sharex=True, layout="constrained")
    for i, (ax, name) in enumerate(zip(axes.flat, QUANTITIES)):
        draw_panel(ax, runs, name, label_spike=False, legend=False, short=True)
        ax.set_title(_GRID_TITLES[name], loc="left", fontweight="bold")
        if i >= 3:
            ax.set_xlabel(time_axis_label(runs))
    figure_legend(fig, runs)
    fig.suptitle(title or _title(runs), fontweight="bold")
    return figstyle.save_figure(fig, path)


def quantity_figure(runs: Sequence[Run], quantity: str, path: str | os.PathLike[str], *, title: str | None = None) -> Path:
    """Write one quantity (a key of `QUANTITIES`) of ``runs`` as a 1920 x 1080 chart; returns the path."""
    if quantity not in QUANTITIES:
        raise ValueError(f"unknown quantity '{quantity}'; allowed: {', '.join(QUANTITIES)}")
    if not runs:
        raise ValueError("quantity_figure needs at least one run")
    plt = figstyle.pyplot()
    fig, ax = plt.subplots(figsize=figstyle.SLIDE_INCHES, layout="constrained")
    draw_panel(ax, runs, quantity, label_spike=True, legend=True)
    ax.set_xlabel(time_axis_label(runs))
    ax.set_title(title or f"{QUANTITIES[quantity][0]}\n{_title(runs)}", loc="left", fontweight="bold")
    return figstyle.save_figure(fig, path)


def figure_legend(fig: Any, runs: Sequence[Run], *, quantities: Sequence[str] = tuple(QUANTITIES)) -> None:
    """One legend for a whole figure: a coloured line per arm, then the reference lines the panels draw."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles: list[Any] = [Line2D([], [], color=c, lw=4, label=name) for c, name in zip(arm_colors(runs), arm_labels(runs))]
    if "rps" in quantities:
        handles.append(Line2D([], [], color="0.3", lw=2, ls="--", label="offered load"))
    if "p95" in quantities:
        handles.append(Line2D([], [], color="#000000", lw=2.5, ls=(0, (6, 3)), label="latency objective"))
    if "cpu" in quantities and any(cpuview.hpa_target_pct_of_limit(r) for r in runs):
        handles.append(Line2D([], [], color="0.2", lw=2, ls=(0, (2, 2)), label="HPA target"))
    if "replicas" in quantities and any((r.events["kind"] == "hpa_rescale").any() for r in runs if r.events is not None and len(r.events)):
        handles.append(Line2D([], [], color="0.5", marker="v", ms=14, mec="black", ls="none", label="HPA decision"))
    if _window(runs[0]) is not None:
        handles.append(Patch(color="0.9", label="spike window"))
    if any(rollout_windows(r) for r in runs):
        handles.append(Patch(facecolor="none", edgecolor="0.3", hatch="//", label="rollout window"))
    if any(fault_times(r) for r in runs):
        handles.append(Line2D([], [], color="0.3", lw=2, ls=":", label="fault injected"))
    fig.legend(handles=handles, loc="outside lower center", ncol=min(4, len(handles)), frameon=False)


# --- panels ------------------------------------------------------------------------------------


def draw_panel(ax: Any, runs: Sequence[Run], quantity: str, *, label_spike: bool, legend: bool, short: bool = False) -> None:
    """Draw one quantity of ``runs`` on ``ax`` (used by every figure of the kit, slides included)."""
    colors = arm_colors(runs)
    labels = arm_labels(runs)
    window = _window(runs[0])
    if window is not None:
        _spike(ax, window, label=label_spike)
    _PANELS[quantity](ax, runs, colors, labels)
    placed: list[tuple[float, int]] = []  # labels of every run on this panel: one operator's label never covers another's
    for run, color in zip(runs, colors):
        _mark_manual_actions(ax, run, color, text=quantity == "replicas" and not short, span=_span_s(runs), placed=placed)
        _mark_rollouts_and_faults(ax, run, color, legend=legend)
    _time_axis(ax, runs, max_ticks=4 if short else 8)
    ax.set_ylabel(QUANTITIES[quantity][2 if short else 1])
    ax.grid(True, alpha=0.35)
    if legend:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), framealpha=0.95, borderaxespad=0.0)


def _window(run: Run) -> tuple[float, float] | None:
    from scalelab.analysis import spike_window_of

    return spike_window_of(run)


def _replicas(ax: Any, runs: Sequence[Run], colors: list[str], labels: list[str]) -> None:
    for run, color, name in zip(runs, colors, labels):
        s = run.samples
        ax.step(s["t_s"], s["replicas_desired"], where="post", color=color, lw=3.5, label=f"{name}: desired")
        ax.step(s["t_s"], s["replicas_ready"], where="post", color=color, lw=2.5, ls="--", label=f"{name}: ready")
        _mark_hpa_decisions(ax, run, color, name)
    top = max(float(r.samples["replicas_desired"].max()) for r in runs)
    ax.set_ylim(bottom=0, top=top * 1.6 + 1)  # headroom: the operator's labels live above the data
    ax.yaxis.get_major_locator().set_params(integer=True)


def _cpu(ax: Any, runs: Sequence[Run], colors: list[str], labels: list[str]) -> None:
    targets: set[tuple[float, float]] = set()
    for run, color, name in zip(runs, colors, labels):
        ax.plot(run.samples["t_s"], _smooth(cpuview.cpu_pct_of_running_limit(run)), color=color, label=name)
        seen = cpuview.hpa_seen_pct_of_limit(run)
        if seen.notna().any():
            ax.step(run.samples["t_s"], seen, where="post", color=color, lw=2, ls=":", label=f"{name}: what the HPA saw")
        target = cpuview.hpa_target_pct_of_limit(run)
        if target:
            targets.add(target)
    for of_limit, of_request in sorted(targets):
        ax.axhline(of_limit, color="0.2", lw=2, ls=(0, (2, 2)), zorder=1,
                   label=f"HPA target {of_request:.0f}% of request = {of_limit:.0f}% of limit")
    ax.set_ylim(bottom=0)


def _rps(ax: Any, runs: Sequence[Run], colors: list[str], labels: list[str]) -> None:
    first = runs[0].samples
    ax.plot(first["t_s"], pd.to_numeric(first["offered_load"], errors="coerce"), color="0.3", lw=2, ls="--", label="offered load")
    for run, color, name in zip(runs, colors, labels):
        ax.plot(run.samples["t_s"], _smooth(run.samples["rps"]), color=color, label=f"{name}: served")
    ax.set_ylim(bottom=0)


def _p95(ax: Any, runs: Sequence[Run], colors: list[str], labels: list[str]) -> None:
    objective = None
    for run, color, name in zip(runs, colors, labels):
        p95 = pd.to_numeric(run.samples["p95_ms"], errors="coerce")
        seen = p95.notna()  # seconds with no completed request have no p95: join the line across them
        ax.plot(run.samples["t_s"][seen], p95[seen], color=color, label=name)
        objective = objective or run.manifest.get("latency_objective_ms")
    if objective:
        ax.axhline(float(objective), color="#000000", lw=2.5, ls=(0, (6, 3)), label=f"objective {float(objective):.0f} ms")
    ax.set_yscale("log")


def _errors(ax: Any, runs: Sequence[Run], colors: list[str], labels: list[str]) -> None:
    for run, color, name in zip(runs, colors, labels):
        errors = pd.to_numeric(run.samples["errors"], errors="coerce").fillna(0)
        ax.plot(run.samples["t_s"], _smooth(errors), color=color, label=f"{name}: {errors.sum():,.0f} in total")
    ax.set_ylim(bottom=0)


def _cost(ax: Any, runs: Sequence[Run], colors: list[str], labels: list[str]) -> None:
    for run, color, name in zip(runs, colors, labels):
        cost = pd.to_numeric(run.samples["cost_usd_cum"], errors="coerce")
        final = cost.dropna().iloc[-1] if cost.notna().any() else 0.0
        ax.plot(run.samples["t_s"], cost, color=color, label=f"{name}: ${final:,.3f}")
    ax.set_ylim(bottom=0)


_PANELS: dict[str, Callable[[Any, Sequence[Run], list[str], list[str]], None]] = {
    "replicas": _replicas,
    "cpu": _cpu,
    "rps": _rps,
    "p95": _p95,
    "errors": _errors,
    "cost": _cost,
}


# --- annotations and axes ----------------------------------------------------------------------


def _spike(ax: Any, window: tuple[float, float], *, label: bool) -> None:
    """Shade the spike; name its start and end as ticks on the top edge, where no data is."""
    start, end = window
    ax.axvspan(start, end, color="0.9", zorder=0, label="spike window")
    for x in (start, end):
        ax.axvline(x, color="0.45", lw=1.5, zorder=1)
    if label:
        top = ax.secondary_xaxis("top")
        top.set_xticks([start, end], [f"spike {_mmss(start)}", f"ends {_mmss(end)}"])
        top.tick_params(length=0, labelcolor="0.25")


def _mark_manual_actions(ax: Any, run: Run, color: str, *, text: bool, span: float, placed: list[tuple[float, int]]) -> None:
    ev = run.events
    if ev is None or len(ev) == 0:
        return
    for _, row in ev[ev["kind"] == "scale"].sort_values("t_s").iterrows():
        x = float(row["t_s"])
        ax.axvline(x, color=color, lw=2, ls="-.", zorder=2)
        if not text:
            continue
        # in the headroom band above every data line (see _replicas); close actions (of any run) stack, never overlap
        taken = {r for px, r in placed if abs(x - px) < 0.3 * span}
        row_no = min(set(range(len(taken) + 1)) - taken)
        placed.append((x, row_no))
        right = x > 0.6 * span
        who = "operator" if str(row.get("source", "")) in ("manual-plan", "live", "") else str(row["source"])
        who += " on Swarm" if figstyle.role_of(run) == "swarm-manual" and who == "operator" else ""
        ax.annotate(f"{who}: scale to {int(row['replicas'])} at {_mmss(x)}", (x, 0.97 - 0.09 * row_no), xycoords=("data", "axes fraction"),
                    xytext=(-8 if right else 8, 0), textcoords="offset points", va="top", ha="right" if right else "left",
                    color=color, fontweight="bold",
                    bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.9})


def rollout_windows(run: Run) -> list[tuple[float, float | None, str]]:
    """(start, end or None, strategy) of each rollout of ``run``, from its events."""
    ev = run.events
    if ev is None or len(ev) == 0:
        return []
    out: list[tuple[float, float | None, str]] = []
    rows = ev[ev["kind"].isin(("rollout_start", "rollout_end"))].sort_values("t_s", kind="stable")
    for _, row in rows.iterrows():
        if row["kind"] == "rollout_start":
            strategy = next((w.split("=", 1)[1] for w in str(row["detail"]).split() if w.startswith("strategy=")), "")
            out.append((float(row["t_s"]), None, strategy))
        elif out and out[-1][1] is None:
            out[-1] = (out[-1][0], float(row["t_s"]), out[-1][2])
    return out


def fault_times(run: Run) -> list[tuple[float, str]]:
    """(time, kind) of each fault the kit injected into ``run``."""
    ev = run.events
    if ev is None or len(ev) == 0:
        return []
    return [(float(r["t_s"]), str(r["detail"]).split(" ", 1)[0]) for _, r in ev[ev["kind"] == "fault"].iterrows()]


def _mark_rollouts_and_faults(ax: Any, run: Run, color: str, *, legend: bool) -> None:
    """The rollout window (hatched, in the arm's colour; open-ended if the run ended first) and fault times (dotted)."""
    end_of_run = float(run.samples["t_s"].max()) if len(run.samples) else 0.0
    for start, end, strategy in rollout_windows(run):
        ax.axvspan(start, end if end is not None else end_of_run, facecolor=color, alpha=0.12, hatch="//", edgecolor=color, lw=0, zorder=0,
                   label=f"{run.label}: rollout ({strategy})" if legend else None)
    for t, kind in fault_times(run):
        ax.axvline(t, color=color, lw=2, ls=":", zorder=2, label=f"{run.label}: {kind}" if legend else None)


def _mark_hpa_decisions(ax: Any, run: Run, color: str, name: str) -> None:
    """Triangles where the HPA changed the count (no text next to them: the y axis says the size)."""
    ev = run.events
    if ev is None or len(ev) == 0:
        return
    hpa = ev[ev["kind"] == "hpa_rescale"].dropna(subset=["replicas"])
    if hpa.empty:
        return
    ax.scatter(hpa["t_s"], hpa["replicas"], marker="v", s=170, color=color, edgecolors="black", zorder=5,
               label=f"{name}: HPA decision ({len(hpa)})")


def _time_axis(ax: Any, runs: Sequence[Run], *, max_ticks: int = 8) -> None:
    from matplotlib.ticker import FuncFormatter, MultipleLocator

    span = _span_s(runs)
    for step in (15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 10800, 21600):
        if span / step <= max_ticks:
            break
    ax.xaxis.set_major_locator(MultipleLocator(step))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: _mmss(x)))
    ax.set_xlim(left=0, right=span)


def _span_s(runs: Sequence[Run]) -> float:
    spans = [float(r.samples["t_s"].max()) for r in runs if len(r.samples)]
    return max(spans) if spans else 60.0


def time_axis_label(runs: Sequence[Run]) -> str:
    return "time since start (h:mm)" if _span_s(runs) > 3 * 3600 else "time since start (min:s)"


def _mmss(seconds: float) -> str:
    """``1:30`` (min:s) below an hour, ``13:00h`` (h:mm) above."""
    total = int(round(seconds))
    if total >= 3600:
        return f"{total // 3600}h" if total % 3600 == 0 else f"{total // 3600}:{total % 3600 // 60:02d}h"
    return f"{total // 60}:{total % 60:02d}"


def _smooth(series: pd.Series) -> pd.Series:
    """A centred mean over 5 s (or 1/300 of a long run): per-second counts of a few requests are noisy to read."""
    window = max(5, len(series) // 300)
    return pd.to_numeric(series, errors="coerce").rolling(window, center=True, min_periods=1).mean()


def _title(runs: Sequence[Run]) -> str:
    scenario = runs[0].manifest.get("scenario", "")
    kinds = {r.manifest.get("platform") for r in runs}
    return f"{scenario}: " + " vs ".join(arm_labels(runs)) + (" (simulated)" if kinds == {"sim"} else "")


# --- the spread of requests over replicas (issue 18) ---------------------------------------------

__all__ += ["spread_figure", "SPREAD_BIN_S"]  # noqa: PLE0605 - appended here to keep this section self-contained

#: Seconds per column of the heat strip: a few requests a second per replica are too noisy to read.
SPREAD_BIN_S = 5


def spread_figure(runs: Sequence[Run], path: str | os.PathLike[str], *, title: str | None = None) -> Path | None:
    """A heat strip per run: requests served per replica (rows) over time (columns of `SPREAD_BIN_S` s).

    An even balancer gives even stripes; a pinned connection gives one bright row and dark new
    rows. The title of each strip carries the run's mean Jain index while two or more replicas
    were ready (docs/spread.md). Runs without per-replica records (simulated ones) are left out;
    returns None when no run has them.
    """
    import numpy as np

    tables = [(run, run.replicas) for run in runs]
    tables = [(run, t) for run, t in tables if len(t) and t["requests"].sum() > 0]
    if not tables:
        return None
    plt = figstyle.pyplot()
    heights = [max(2.0, 0.35 * t["replica"].nunique() + 1.2) for _, t in tables]
    fig, axes = plt.subplots(len(tables), 1, figsize=figstyle.SLIDE_INCHES, squeeze=False, layout="constrained",
                             gridspec_kw={"height_ratios": heights})
    span = _span_s([run for run, _ in tables])
    image = None
    for ax, (run, table) in zip(axes[:, 0], tables):
        order = table[table["requests"] > 0].groupby("replica")["t_s"].min().sort_values()
        names = order.index.tolist() + sorted(set(table["replica"]) - set(order.index))
        bins = np.arange(0, span + SPREAD_BIN_S, SPREAD_BIN_S)
        table = table.assign(col=np.minimum(table["t_s"].to_numpy() // SPREAD_BIN_S, len(bins) - 2))
        grid = table.pivot_table(index="replica", columns="col", values="requests", aggfunc="sum", fill_value=0)
        grid = grid.reindex(index=names, columns=range(len(bins) - 1), fill_value=0) / SPREAD_BIN_S
        image = ax.pcolormesh(bins, np.arange(len(names) + 1), grid.to_numpy(), cmap="viridis", shading="flat", vmin=0)
        ax.set_yticks(np.arange(len(names)) + 0.5)
        ax.set_yticklabels([_short_replica(n) for n in names], fontsize=figstyle.MIN_TEXT_PT)
        ax.invert_yaxis()
        jain = _mean_jain(run)
        label = f"{run.label}: requests/s per replica" + ("" if jain is None else f" (Jain index {jain:.2f}; 1 = even)")
        ax.set_title(label, loc="left")
        ax.set_ylabel("replica")
        _time_axis(ax, [run for run, _ in tables])
    axes[-1, 0].set_xlabel(time_axis_label([run for run, _ in tables]))
    if image is not None:
        fig.colorbar(image, ax=axes[:, 0].tolist(), label="requests/s", shrink=0.9)
    fig.suptitle(title or "How the load balancer spread the requests", fontweight="bold")
    return figstyle.save_figure(fig, path)


def _short_replica(name: str) -> str:
    """``ai-agent-86dc9c464b-md4sv`` -> ``…md4sv``; a compose short id stays as it is."""
    parts = str(name).split("-")
    return f"…{parts[-1]}" if len(parts) > 2 else str(name)


def _mean_jain(run: Run) -> float | None:
    from scalelab.analysis import spread_index

    return spread_index(run)
