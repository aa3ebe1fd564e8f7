"""How far to trust the simulator, and how fast it is (issue 18).

Run: .venv/bin/python benchmarks/bench_fidelity.py [--repeat 3]

1. The wall time of `scalelab sim day` end to end (three arms simulated over 24 h at one-second
   steps, three run directories written, the summary printed), as a user types it: a fresh
   process each time. Prints the best and the median of ``--repeat`` runs.
2. For every committed real run (tests/fixtures/runs/, tests/fixtures/recorded/): the same scenario simulated, and the
   `scalelab compare` figures side by side: replicas within +-1, seconds over the latency
   objective real vs simulated, errors real vs simulated.
3. The agreement targets of issue 18 for the recorded runs (tests/fixtures/recorded/), each
   simulated with the scenario calibrated from itself, next to the same figures of the model
   before issue 18's changes (``benchmarks/fidelity_before.json``, written by this script with
   ``--save`` from a checkout holding that model: a worktree of today's tree with ``git checkout
   0e80b10 -- src/scalelab/sim`` and compose's ``sim_spreading`` back at ``round-robin`` in
   registry.py, then ``PYTHONPATH=<worktree>/src python benchmarks/bench_fidelity.py
   --skip-timing --save benchmarks/fidelity_before.json``).

Prints figures and whether each is within its bar (docs/fidelity.md); it never fails.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECORDED = ROOT / "tests" / "fixtures" / "recorded"
FIXTURES = (ROOT / "tests" / "fixtures" / "runs", RECORDED)
BEFORE = Path(__file__).with_name("fidelity_before.json")


def sim_day_wall_s(repeat: int) -> list[float]:
    scalelab = Path(sys.executable).with_name("scalelab")
    walls = []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory(prefix="bench-sim-day-") as tmp:
            start = time.perf_counter()
            subprocess.run([str(scalelab), "sim", "day", "--runs-dir", tmp], check=True, stdout=subprocess.DEVNULL)  # noqa: S603
            walls.append(time.perf_counter() - start)
    return walls


def fidelity_rows(calibrated: bool, folders: tuple[Path, ...] = FIXTURES) -> list[dict]:
    """One row per committed real run: the run's own (sized) scenario simulated, side by side."""
    from scalelab.analysis import compare, summarize
    from scalelab.sim import simulate_runs
    from scalelab.sim.calibrate import calibrate, fitted_scenario
    from scalelab.telemetry import list_runs, load_run

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-fidelity-") as tmp:
        for path in [p for folder in folders for p in list_runs(folder)]:
            real = load_run(path)
            if real.manifest.get("platform") == "sim":
                continue
            scenario = real.scenario
            if calibrated:
                scenario = fitted_scenario(scenario, calibrate(real))
            sim = simulate_runs(scenario, tmp, arms=[real.arm], workers=1)[0]
            c, r, s = compare(real, sim), summarize(real), summarize(sim)
            rows.append({"run": path.name, "within_1": c["replicas_within_1_share"], "over_real": r["seconds_over_objective"],
                         "over_sim": s["seconds_over_objective"], "err_real": r["errors"], "err_sim": s["errors"],
                         "jain_real": r["spread_jain"], "jain_sim": s["spread_jain"]})
    return rows


def _ok(real: float, sim: float, floor: float) -> str:
    return "yes" if abs(sim - real) <= max(floor, 0.25 * abs(real)) else "no"


def print_fidelity(rows: list[dict], title: str) -> None:
    print(f"\n{title}")
    head = f"{'run':<58} {'±1 %':>6} {'s>SLO real':>10} {'sim':>5} {'ok':>3} {'errors real':>11} {'sim':>5} {'ok':>3} {'Jain real':>9} {'sim':>5}"
    print(head)
    print("-" * len(head))
    for r in rows:
        within = "n/a" if r["within_1"] is None else f"{100 * r['within_1']:.1f}"
        jr = "n/a" if r["jain_real"] is None else f"{r['jain_real']:.2f}"
        js = "n/a" if r["jain_sim"] is None else f"{r['jain_sim']:.2f}"
        print(f"{r['run']:<58} {within:>6} {r['over_real']:>10.0f} {r['over_sim']:>5.0f} {_ok(r['over_real'], r['over_sim'], 10):>3} "
              f"{r['err_real']:>11.0f} {r['err_sim']:>5.0f} {_ok(r['err_real'], r['err_sim'], 10):>3} {jr:>9} {js:>5}")
    print("ok: within max(10, 25% of real) (issue 18, docs/fidelity.md); ±1 %: seconds where the simulated replicas are within ±1 of the real ones")


def _meets(r: dict) -> tuple[bool, bool, bool]:
    within = r["within_1"] is not None and r["within_1"] >= 0.95
    return within, _ok(r["over_real"], r["over_sim"], 10) == "yes", _ok(r["err_real"], r["err_sim"], 10) == "yes"


def print_targets(rows: list[dict], before: dict | None) -> None:
    """Issue 18's bars for the recorded runs, calibrated from each run: before and after."""
    old = {r["run"]: r for r in (before or {}).get("rows", [])}
    label = f"before ({before['model']})" if before else "before: no benchmarks/fidelity_before.json"
    print(f"\nagreement targets (recorded runs, each calibrated from itself): {label} -> now")
    head = f"{'run':<58} {'±1 % (>= 95)':>17} {'s>SLO real':>10} {'sim before->now':>16} {'errors real':>11} {'sim before->now':>16}"
    print(head)
    print("-" * len(head))
    met = 0
    for r in rows:
        b = old.get(r["run"])
        w, o, e = _meets(r)
        met += w and o and e
        pct = lambda v: "n/a" if v is None else f"{100 * v:.1f}"  # noqa: E731
        within = f"{pct(b['within_1']) if b else '-'}->{pct(r['within_1'])} {'ok' if w else 'NO'}"
        over = f"{b['over_sim']:.0f}->{r['over_sim']:.0f} {'ok' if o else 'NO'}" if b else f"{r['over_sim']:.0f} {'ok' if o else 'NO'}"
        err = f"{b['err_sim']:.0f}->{r['err_sim']:.0f} {'ok' if e else 'NO'}" if b else f"{r['err_sim']:.0f} {'ok' if e else 'NO'}"
        print(f"{r['run']:<58} {within:>17} {r['over_real']:>10.0f} {over:>16} {r['err_real']:>11.0f} {err:>16}")
    print(f"{met} of {len(rows)} runs meet all three bars: ±1 replica >= 95% of seconds; s>SLO and errors within max(10, 25% of real)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-timing", action="store_true")
    parser.add_argument("--save", type=Path, default=None, help="Write the recorded runs' calibrated figures as JSON (the 'before' file).")
    args = parser.parse_args()
    if not args.skip_timing:
        walls = sim_day_wall_s(args.repeat)
        print(f"scalelab sim day, end to end: best {min(walls):.2f} s, median {statistics.median(walls):.2f} s over {len(walls)} runs (issue 18 goal: <= 1.5 s)")
    print_fidelity(fidelity_rows(calibrated=False), "committed real runs vs the simulator, as written (a prediction)")
    print_fidelity(fidelity_rows(calibrated=True), "the same, calibrated from each run itself (`scalelab calibrate`: an in-sample fit, not a prediction)")
    targets = fidelity_rows(calibrated=True, folders=(RECORDED,))
    if args.save is not None:
        import subprocess

        import scalelab

        where = Path(scalelab.__file__).parent  # the checkout whose model ran (PYTHONPATH)
        rev = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, cwd=where, check=False).stdout.strip()  # noqa: S603, S607
        args.save.write_text(json.dumps({"model": f"scalelab {rev or 'unknown'}", "rows": targets}, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {args.save}")
    print_targets(targets, json.loads(BEFORE.read_text(encoding="utf-8")) if BEFORE.is_file() else None)


if __name__ == "__main__":
    main()
