"""Simulator speed: a 24-hour day at one-second steps, every arm, on one core.

Run: .venv/bin/python benchmarks/bench_sim.py
Prints simulated seconds per wall second per arm and the total; the target is <= 2 s for all arms.
Times the model only (simulate), not writing the CSV files.
"""

from __future__ import annotations

import time

from scalelab.sim import prepare_scenario, simulate
from scalelab.sim.engine import _levels, _open_arrivals


def main() -> None:
    scenario = prepare_scenario("day")
    _levels.cache_clear()
    _open_arrivals.cache_clear()
    total = 0.0
    simulated = 0.0
    for arm in scenario.arms:
        start = time.perf_counter()
        result = simulate(scenario, arm)
        wall = time.perf_counter() - start
        total += wall
        simulated += scenario.duration_s
        print(f"{arm:<20} {scenario.duration_s:>8.0f} simulated s in {wall:5.2f} s  = {scenario.duration_s / wall:>9,.0f} sim-s/s  (${result.cost_usd:.2f}/day)")
    verdict = "OK" if total <= 2.0 else "SLOW (target <= 2 s)"
    print(f"{'all arms':<20} {simulated:>8.0f} simulated s in {total:5.2f} s  = {simulated / total:>9,.0f} sim-s/s  {verdict}")


if __name__ == "__main__":
    main()
