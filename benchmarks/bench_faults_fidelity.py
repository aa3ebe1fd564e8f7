"""Real vs simulated faults and rollouts, for every committed recorded run (issue 14, item 6).

Run: .venv/bin/python benchmarks/bench_faults_fidelity.py [--own-arrivals] [RUN_DIR_OR_FOLDER ...]

Without arguments it takes every recorded run under tests/fixtures/runs/ that has a fault or a
rollout (the faults, rollouts and ladder fixtures). Each is simulated from its own scenario and
arm (`scalelab.sim.faults`), both are measured with `scalelab.faults.measure` /
`scalelab.rollout.measure`, and the table prints failed requests, error window and time to
recovery, real / simulated, and whether each is within the tolerance of docs/fidelity.md
("Faults and rollouts"; `!` marks a figure outside it). ``--own-arrivals`` simulates each run with
the moment its load generator started (`scalelab calibrate`'s ``sim.load_start_s``), so the model
meets the very arrivals the run met; without it the simulation is a prediction from the scenario
alone. It prints; it never fails (the unit test tests/unit/test_sim_faults.py does).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from scalelab.sim.faultcheck import DRAWS, TOLERANCE, compare, find_runs, render  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "runs"


def main(argv: list[str]) -> int:
    own = "--own-arrivals" in argv
    roots = [Path(a) for a in argv if a != "--own-arrivals"] or [FIXTURES]
    runs = find_runs(roots)
    if not runs:
        print(f"no recorded run with a fault or a rollout under {', '.join(map(str, roots))}")
        return 0
    t0 = time.perf_counter()
    pairs = []
    for run in runs:
        try:
            pairs += compare(run, own_arrivals=own)
        except Exception as exc:  # noqa: BLE001 - a run this checkout cannot read (newer fields): say so, go on
            print(f"{run.name}: not compared: {str(exc).splitlines()[0]}")
    took = time.perf_counter() - t0
    print(render(pairs))
    ok = sum(p.ok for p in pairs)
    bars = ", ".join(f"{f} max({a:g}, {r:.0%}{', 2·√sim' if f == 'failed' else ''})" for f, (a, r) in TOLERANCE.items())
    print(f"\n{ok}/{len(pairs)} within tolerance ({bars}); sim = the median of {DRAWS} draws of the front door's choices [their range], "
          f"{'with each run' + chr(39) + 's own arrivals' if own else 'predicted from the scenario'}; "
          f"{len(runs)} runs, {len(runs) * DRAWS} simulations measured in {took:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
