"""How far to trust the simulator, and how fast it is (issue 18).

Run: .venv/bin/python benchmarks/bench_fidelity.py [--repeat 5]

1. The wall time of `scalelab sim day` end to end (three arms simulated over 24 h at one-second
   steps, three run directories written, the summary printed), as a user types it: a fresh
   process each time. Prints the best and the median of ``--repeat`` runs, and the load average
   before them: on a busy machine (CI runs this while its test cluster is up) the kit simulates in
   one process instead of two, and takes longer.
2. For every committed real run (tests/fixtures/runs/, tests/fixtures/recorded/): the same scenario simulated, and the
   `scalelab compare` figures side by side: replicas within +-1, seconds over the latency
   objective real vs simulated, errors real vs simulated.
3. The agreement targets of issue 18 for the recorded runs (tests/fixtures/recorded/), each
   calibrated from itself and simulated with its own seed, so with the arrivals its load
   generator sent (`scalelab.sim.fidelity.predicted`), next to the same figures of two earlier
   models: before issue 18 (``benchmarks/fidelity_before.json``: a worktree of f2b5913 with ``git
   checkout 0e80b10 -- src/scalelab/sim`` and compose's ``sim_spreading`` back at ``round-robin``
   in registry.py) and the pooled queue (``benchmarks/fidelity_f2b5913.json``: a worktree of
   f2b5913). Each is written by this script with ``--save`` and that checkout on PYTHONPATH
   (``PYTHONPATH=<worktree>/src python benchmarks/bench_fidelity.py --skip-timing --save FILE``;
   this tree's `scalelab.sim.fidelity` judges, that tree's model simulates).

Prints figures and whether each is within its bar (docs/fidelity.md); it never fails.
"""

from __future__ import annotations

import argparse
import json
import os
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
#: The model before issue 18 (0e80b10), and main before the per-replica queues (f2b5913).
BASELINES = (BEFORE, Path(__file__).with_name("fidelity_f2b5913.json"))
#: Part 3 simulates each recorded run with its own seed: the arrivals its load generator sent.
DRAWS = 1


def sim_day_wall_s(repeat: int) -> tuple[list[float], list[float]]:
    """Wall times of ``repeat`` runs, and the 1-minute load average before each (what the kit reads
    to choose one or two worker processes, `scalelab.sim.engine.simulate_runs`)."""
    scalelab = Path(sys.executable).with_name("scalelab")
    walls, loads = [], []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory(prefix="bench-sim-day-") as tmp:
            loads.append(os.getloadavg()[0])
            start = time.perf_counter()
            subprocess.run([str(scalelab), "sim", "day", "--runs-dir", tmp], check=True, stdout=subprocess.DEVNULL)  # noqa: S603
            walls.append(time.perf_counter() - start)
    return walls, loads


def fidelity_rows(calibrated: bool, folders: tuple[Path, ...] = FIXTURES, draws: int = 1) -> list[dict]:
    """One row per committed real run: the run's own (sized) scenario simulated, side by side; with
    ``draws`` > 1 the mean over that many arrival draws (`scalelab.sim.fidelity.predicted`)."""
    from scalelab.telemetry import list_runs, load_run

    fidelity = _fidelity()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-fidelity-") as tmp:
        for path in [p for folder in folders for p in list_runs(folder)]:
            real = load_run(path)
            if real.manifest.get("platform") == "sim":
                continue
            rows.append(fidelity.agreement(real, fidelity.simulated_like(real, tmp, calibrated=calibrated, draws=draws)).as_dict())
    return rows


def _fidelity():  # type: ignore[no-untyped-def]
    """`scalelab.sim.fidelity`'s agreement and simulated_like; from this tree's file when an older
    checkout that lacks the module is on PYTHONPATH (``--save`` of a baseline: its model, these bars)."""
    try:
        from scalelab.sim import fidelity
    except ImportError:
        import importlib.util

        spec = importlib.util.spec_from_file_location("_scalelab_fidelity", ROOT / "src" / "scalelab" / "sim" / "fidelity.py")
        assert spec is not None and spec.loader is not None
        fidelity = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = fidelity  # its dataclass looks itself up there
        spec.loader.exec_module(fidelity)
    return fidelity


def _ok(real: float, sim: float) -> str:
    return "yes" if _fidelity().within(real, sim) else "no"


def print_fidelity(rows: list[dict], title: str) -> None:
    print(f"\n{title}")
    head = f"{'run':<58} {'±1 %':>6} {'s>SLO real':>10} {'sim':>5} {'ok':>3} {'errors real':>11} {'sim':>5} {'ok':>3} {'Jain real':>9} {'sim':>5}"
    print(head)
    print("-" * len(head))
    for r in rows:
        within = "n/a" if r["within_1"] is None else f"{100 * r['within_1']:.1f}"
        jr = "n/a" if r["jain_real"] is None else f"{r['jain_real']:.2f}"
        js = "n/a" if r["jain_sim"] is None else f"{r['jain_sim']:.2f}"
        print(f"{r['run']:<58} {within:>6} {r['over_real']:>10.0f} {r['over_sim']:>5.0f} {_ok(r['over_real'], r['over_sim']):>3} "
              f"{r['err_real']:>11.0f} {r['err_sim']:>5.0f} {_ok(r['err_real'], r['err_sim']):>3} {jr:>9} {js:>5}")
    print("ok: within max(10, 25% of real) (issue 18, docs/fidelity.md); ±1 %: seconds where the simulated replicas are within ±1 of the real ones")


def _meets(r: dict) -> tuple[bool, bool, bool]:
    a = _fidelity().Agreement(**r)
    return a.replicas_ok, a.over_ok, a.errors_ok


def _chain(seq: list, key: str, fmt) -> str:  # type: ignore[no-untyped-def]
    """One figure of each baseline and now, joined by arrows ("-" where a baseline lacks the run)."""
    return "->".join("-" if x is None else fmt(x[key]) for x in seq)


def print_targets(rows: list[dict], baselines: list[dict]) -> None:
    """Issue 18's bars for the recorded runs, calibrated from each run: each baseline, then now."""
    old = [{r["run"]: r for r in b.get("rows", [])} for b in baselines]
    labels = " -> ".join([*(b["model"] for b in baselines), "now"])
    print(f"\nagreement targets (recorded runs, each calibrated from itself): {labels}")
    width = 7 * (len(baselines) + 1)
    head = (f"{'run':<58} {'±1 % (>= 95)':>{width + 3}} {'s>SLO real':>10} {'sim':>{width + 3}} {'errors real':>11} {'sim':>{width + 3}}"
            f" {'all bars':>{6 * (len(baselines) + 1)}}")
    print(head)
    print("-" * len(head))
    met = 0
    for r in rows:
        seq = [*(o.get(r["run"]) for o in old), r]
        marks = []
        for x in seq:
            marks.append("-" if x is None else ("yes" if all(_meets(x)) else "no"))
        w, o, e = _meets(r)
        met += w and o and e
        within = f"{_chain(seq, 'within_1', lambda v: 'n/a' if v is None else f'{100 * v:.1f}')} {'ok' if w else 'NO'}"
        over = f"{_chain(seq, 'over_sim', lambda v: f'{v:.0f}')} {'ok' if o else 'NO'}"
        err = f"{_chain(seq, 'err_sim', lambda v: f'{v:.0f}')} {'ok' if e else 'NO'}"
        print(f"{r['run']:<58} {within:>{width + 3}} {r['over_real']:>10.0f} {over:>{width + 3}} {r['err_real']:>11.0f} {err:>{width + 3}}"
              f" {'->'.join(marks):>{6 * (len(baselines) + 1)}}")
    print(f"{met} of {len(rows)} runs meet all three bars now: ±1 replica >= 95% of seconds; s>SLO and errors within max(10, 25% of real)")


def save_baseline(path: Path, rows: list[dict]) -> None:
    """Write the recorded runs' figures (mean over `DRAWS` arrival draws) as a baseline file."""
    import scalelab

    where = Path(scalelab.__file__).parent  # the checkout whose model ran (PYTHONPATH)
    rev = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, cwd=where, check=False).stdout.strip()  # noqa: S603, S607
    path.write_text(json.dumps({"model": f"scalelab {rev or 'unknown'}", "draws": DRAWS, "rows": rows}, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--skip-timing", action="store_true")
    parser.add_argument("--save", type=Path, default=None, help="Write the recorded runs' calibrated figures as JSON (the 'before' file).")
    args = parser.parse_args()
    if not args.skip_timing:
        walls, loads = sim_day_wall_s(args.repeat)
        from scalelab.sim.engine import _workers

        workers = sorted({_workers(None, 3, load) for load in loads})
        print(f"scalelab sim day, end to end: best {min(walls):.2f} s, median {statistics.median(walls):.2f} s over {len(walls)} runs (issue 18 goal: <= 1.5 s); "
              f"1-minute load average {min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} CPUs, so {' or '.join(map(str, workers))} worker process(es)")
    print_fidelity(fidelity_rows(calibrated=False), "committed real runs vs the simulator, as written (a prediction)")
    print_fidelity(fidelity_rows(calibrated=True), "the same, calibrated from each run itself (`scalelab calibrate`: an in-sample fit, not a prediction)")
    targets = fidelity_rows(calibrated=True, folders=(RECORDED,), draws=DRAWS)
    if args.save is not None:
        save_baseline(args.save, targets)
    print_targets(targets, [json.loads(path.read_text(encoding="utf-8")) for path in BASELINES if path.is_file()])


if __name__ == "__main__":
    main()
