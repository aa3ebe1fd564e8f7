"""`scalelab demo`: the classroom spike on every arm in the simulator, a figure and a summary.

No Docker needed: simulates ``classroom-spike``, writes one run directory per arm (the same
format as real runs), draws the comparison figure next to them and returns the summary table.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from scalelab.analysis import render_summary, summary_table
from scalelab.plots import comparison_figure
from scalelab.sim.engine import prepare_scenario, simulate_runs

__all__ = ["DemoResult", "run_demo", "DEMO_SCENARIO"]

DEMO_SCENARIO = "classroom-spike"


@dataclass(frozen=True)
class DemoResult:
    run_dirs: list[Path]
    figure: Path
    summary: str


def run_demo(runs_root: str | os.PathLike[str] = "runs", *, scenario: str = DEMO_SCENARIO, seed: int | None = None,
             cpu_budget: float | None = None) -> DemoResult:
    sc = prepare_scenario(scenario, cpu_budget=cpu_budget, seed=seed)
    runs = simulate_runs(sc, runs_root, seed=seed)
    dirs = [r.path for r in runs]
    figure = comparison_figure(runs, Path(runs_root) / f"{dirs[0].name[:15]}-{sc.name}-comparison.png")
    return DemoResult(dirs, figure, render_summary(summary_table(runs), title=f"{sc.name} (simulated, seed {sc.seed})"))
