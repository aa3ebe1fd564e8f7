"""The Host A / Host B chart: per host, CPU as % of its cap and the replicas on it, second by second.

One row per run that has a ``hosts.csv`` (compose, Swarm, Kubernetes: the lesson's order), one
column per host. A host's stop (fault ``node-loss``) is a dotted line, the seconds it was down
are shaded. Read from the back row: `scalelab.figstyle` sizes, the run's arm colour for its CPU.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from scalelab import figstyle
from scalelab.telemetry import Run

__all__ = ["hosts_figure", "host_stops", "host_table", "CAPTION"]

CAPTION = ("Each host has its own CPU cap (a container with --cpus). Solid: the CPU the whole host used, in % of its cap; "
           "steps: the replicas running on it. Compose talks to one Docker daemon, so every replica lands on Host A, which runs "
           "at its cap while Host B idles; Swarm and Kubernetes spread them. Grey: a host that was down (dotted: the kit stopped it).")


def host_stops(run: Run) -> list[tuple[float, str]]:
    """(time, host) of each ``node-loss`` fault of ``run`` (its events' ``host=`` word)."""
    ev = run.events
    if ev is None or len(ev) == 0:
        return []
    out = []
    for _, row in ev[ev["kind"] == "fault"].iterrows():
        words = str(row["detail"]).split()
        if words and words[0] == "node-loss":
            host = next((w.split("=", 1)[1] for w in words if w.startswith("host=")), "")
            out.append((float(row["t_s"]), host))
    return out


def host_table(run: Run) -> pd.DataFrame:
    """Per host: seconds up, mean and peak CPU in % of its cap while up (peak: of 3-second means, as the chart draws it;
    one second's reading jitters with the sampler's timing), peak replicas (for labs and the report)."""
    h = run.hosts
    rows = []
    for name, g in h.groupby("host", sort=False):
        up = g[g["up"] == 1]
        pct = pd.to_numeric(up["cpu_cores"], errors="coerce") / pd.to_numeric(up["cpu_limit_cores"], errors="coerce") * 100
        smooth = pct.rolling(3, center=True, min_periods=1).mean()
        rows.append({"host": name, "cap_cores": float(g["cpu_limit_cores"].iloc[0]), "seconds_up": len(up),
                     "cpu_pct_mean": round(float(pct.mean()), 1) if pct.notna().any() else None,
                     "cpu_pct_max": round(float(smooth.max()), 1) if pct.notna().any() else None,
                     "replicas_max": int(pd.to_numeric(g["replicas"], errors="coerce").max())})
    return pd.DataFrame(rows)


def hosts_figure(runs: Sequence[Run], path: str | os.PathLike[str], *, title: str | None = None) -> Path | None:
    """The chart (see the module doc) of the ``runs`` that have a hosts.csv; None when none has one."""
    from scalelab.plots import _time_axis, arm_colors, time_axis_label

    colors = dict(zip((id(r) for r in runs), arm_colors(runs)))
    with_hosts = [r for r in runs if len(r.hosts)]
    if not with_hosts:
        return None
    names: list[str] = []
    for r in with_hosts:
        names += [str(n) for n in r.hosts["host"].drop_duplicates() if str(n) not in names]
    plt = figstyle.pyplot()
    fig, axes = plt.subplots(len(with_hosts), len(names), figsize=figstyle.SLIDE_INCHES, squeeze=False, sharex=True, sharey=True,
                             layout="constrained")
    top = max(5, int(max(pd.to_numeric(r.hosts["replicas"], errors="coerce").max() for r in with_hosts)) + 1)
    for i, run in enumerate(with_hosts):
        for j, name in enumerate(names):
            _panel(axes[i, j], run, name, colors[id(run)], top, legend=(i == 0 and j == 0))
            lost = "".join(f", {h} lost" for _t, h in host_stops(run))
            axes[i, j].set_title(f"{run.label}{lost}: " + (f"Host {name}" if len(name) <= 2 else name), loc="left")
            _time_axis(axes[i, j], with_hosts, max_ticks=4)
        axes[i, 0].set_ylabel("CPU, % of cap")
    for ax in axes[-1, :]:
        ax.set_xlabel(time_axis_label(with_hosts))
    handles, labels = axes[0, 0].get_legend_handles_labels()
    twin = getattr(axes[0, 0], "_scalelab_twin", None)
    if twin is not None:
        more = twin.get_legend_handles_labels()
        handles, labels = handles + more[0], labels + more[1]
    fig.legend(handles, labels, loc="outside lower center", ncols=min(4, len(labels)), frameon=False)
    fig.suptitle(title or "One host is not enough: where the replicas ran, and what each host's CPU did", fontweight="bold")
    return figstyle.save_figure(fig, path)


def _panel(ax: Any, run: Run, name: str, color: str, top: int, *, legend: bool) -> None:
    h = run.hosts[run.hosts["host"].astype(str) == name].sort_values("t_s")
    ax.grid(True, alpha=0.35)
    ax.set_ylim(0, 125)
    ax.axhline(100, color="0.3", lw=1.5, ls="--", label="the host's cap" if legend else None)
    twin = ax.twinx()
    ax._scalelab_twin = twin
    twin.set_ylim(0, top)
    twin.yaxis.get_major_locator().set_params(integer=True)
    twin.set_ylabel("replicas")
    if h.empty:
        return
    t = pd.to_numeric(h["t_s"], errors="coerce")
    pct = pd.to_numeric(h["cpu_cores"], errors="coerce") / pd.to_numeric(h["cpu_limit_cores"], errors="coerce") * 100
    ax.plot(t, pct.rolling(3, center=True, min_periods=1).mean(), color=color, label="CPU used, % of the host's cap" if legend else None)
    twin.step(t, pd.to_numeric(h["replicas"], errors="coerce"), where="post", color="black", lw=2.5, label="replicas on the host" if legend else None)
    down = h[h["up"] == 0]
    if len(down):
        ax.axvspan(float(down["t_s"].min()) - 1, float(down["t_s"].max()), color="0.8", zorder=0, label=None)
    for t_stop, host in host_stops(run):
        if host == name:
            ax.axvline(t_stop, color="black", lw=2.5, ls=":", label=None)
            ax.annotate("stopped", (t_stop, 112), xytext=(6, 0), textcoords="offset points", fontsize=figstyle.FONTS["legend.fontsize"])
