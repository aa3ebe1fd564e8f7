"""Projector slides: one 16:9 image (1920 x 1080) per story, readable from the back row.

A *story* is a set of runs of one scenario and load profile (the arms of ``classroom-spike``,
the arms of ``day``...). Its slide puts three panels side by side — replicas, p95 latency against
the objective, cumulative cost — each titled with the figure the class should remember, one legend
for the arms (coloured by role, `scalelab.figstyle`) and no text smaller than 18 pt at 1080p.
`scalelab report --slides` writes them next to the report. Reads only run directories.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from scalelab import figstyle
from scalelab.analysis import summarize
from scalelab.plots import arm_labels, draw_panel, figure_legend, time_axis_label
from scalelab.telemetry import Run

__all__ = ["story_slide", "write_slides", "stories"]

_SLIDE_FONTS = {"font.size": 18, "axes.titlesize": 20, "axes.labelsize": 19, "legend.fontsize": 19, "xtick.labelsize": 17,
                "ytick.labelsize": 17, "figure.titlesize": 28}


def stories(runs: Sequence[Run]) -> dict[str, list[Run]]:
    """Runs grouped by scenario and load profile, in the order given."""
    out: dict[str, list[Run]] = {}
    for run in runs:
        out.setdefault(f"{run.manifest.get('scenario', '')}/{run.scenario.load.profile}", []).append(run)
    return out


def _headline(runs: Sequence[Run], key: str, fmt: str) -> str:
    names = arm_labels(runs)
    return "\n".join(f"{name}: {format(summarize(r)[key] or 0, fmt)}" for name, r in zip(names, runs))


def story_slide(runs: Sequence[Run], path: str | os.PathLike[str], *, title: str | None = None) -> Path:
    """Write the slide of one story (replicas, p95, cost for its arms) as a 1920 x 1080 PNG."""
    if not runs:
        raise ValueError("story_slide needs at least one run")
    plt = figstyle.pyplot(_SLIDE_FONTS)
    fig, axes = plt.subplots(1, 3, figsize=figstyle.SLIDE_INCHES, sharex=True, layout="constrained")
    panels = (
        ("replicas", "Replicas, peak:\n" + _headline(runs, "peak_replicas", "d")),
        ("p95", "p95 latency, seconds over objective:\n" + _headline(runs, "seconds_over_objective", ",.0f")),
        ("cost", "Cost of the run ($):\n" + _headline(runs, "cost_usd", ",.3f" if max(summarize(r)["cost_usd"] for r in runs) < 10 else ",.2f")),
    )
    for ax, (quantity, heading) in zip(axes, panels):
        draw_panel(ax, runs, quantity, label_spike=False, legend=False, short=True)
        ax.set_title(heading, loc="left", fontsize=19)
        ax.set_xlabel(time_axis_label(runs))
    figure_legend(fig, runs, quantities=[q for q, _ in panels])
    sims = {r.manifest.get("platform") == "sim" for r in runs}
    scenario = runs[0].manifest.get("scenario", "")
    full = f"{scenario}: " + " vs ".join(arm_labels(runs))
    full = full if len(full) <= 60 else f"{scenario}: {len(runs)} arms"  # the legend names them
    fig.suptitle(title or full + (" (simulated)" if sims == {True} else ""), fontweight="bold")
    return figstyle.save_figure(fig, path)


def write_slides(runs: Sequence[Run], out_dir: str | os.PathLike[str]) -> list[Path]:
    """One slide per story of ``runs`` into ``out_dir`` (``slide-<scenario>.png``); returns the paths."""
    out = Path(out_dir)
    paths = []
    for key, group in stories(runs).items():
        name = re.sub(r"[^A-Za-z0-9_.-]+", "-", key.split("/")[0]) or "story"
        paths.append(story_slide(group, out / f"slide-{name}.png"))
    return paths
