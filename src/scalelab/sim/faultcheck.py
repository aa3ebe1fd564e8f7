"""Real vs simulated faults and rollouts: the same scenario and arm, measured the same way.

`compare(run)` simulates a recorded run's own scenario (as sized for it, read from the run
directory) and arm, measures both with `scalelab.faults.table.run_rows` (the faults table:
`scalelab.faults.measure` and, for rollouts, `scalelab.rollout.measure`), and checks the three
figures of docs/fidelity.md ("Faults and rollouts") against their tolerance:

- failed requests: within max(2, 30%) of the real count;
- the error window (first to last failure): within max(2 s, 25%);
- time to recovery: the sampled ready replicas back to their value before the fault (for a
  rollout: its wall time, start to every replica on the new version and ready), within
  max(2 s, 25%); "never" matches only "never".

Used by benchmarks/bench_faults_fidelity.py and tests/unit/test_sim_faults.py.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["TOLERANCE", "Check", "Pair", "compare", "within", "find_runs", "FIGURES"]

#: figure -> (absolute floor, relative share of the real value)
TOLERANCE: dict[str, tuple[float, float]] = {"failed": (2.0, 0.30), "error_window_s": (2.0, 0.25), "to_desired_s": (2.0, 0.25)}
#: the faults-table column of each figure, and how it is shown
FIGURES = {"failed": "failed", "error_window_s": "error window (s)", "to_desired_s": "recovery (s)"}


def within(figure: str, real: float | None, sim: float | None) -> bool:
    """Whether a simulated figure is within the tolerance of the real one (None = never)."""
    if real is None or sim is None:
        return real is None and sim is None
    floor, share = TOLERANCE[figure]
    return abs(sim - real) <= max(floor, share * abs(real))


@dataclass(frozen=True)
class Check:
    figure: str
    real: float | None
    sim: float | None

    @property
    def ok(self) -> bool:
        return within(self.figure, self.real, self.sim)


@dataclass(frozen=True)
class Pair:
    """One fault or rollout of a recorded run and its simulation."""

    run: str
    arm: str
    platform: str
    kind: str
    checks: tuple[Check, ...]
    real_row: dict[str, Any]
    sim_row: dict[str, Any] | None

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)


def _is_disruption_run(path: Path) -> bool:
    import csv

    events = path / "events.csv"
    if not (path / "requests.csv").is_file() or not events.is_file():
        return False
    with events.open(newline="", encoding="utf-8") as f:
        return any(row.get("kind") in ("fault", "rollout_start") for row in csv.DictReader(f))


def find_runs(roots: Iterable[Path]) -> list[Path]:
    """Recorded (not simulated) run directories under ``roots`` that hold a fault or a rollout."""
    import json

    out: list[Path] = []
    for root in roots:
        if not root.exists():
            continue
        for manifest in sorted(root.rglob("manifest.json")):
            run = manifest.parent
            try:
                platform = json.loads(manifest.read_text(encoding="utf-8")).get("platform")
            except ValueError:
                continue
            if platform != "sim" and _is_disruption_run(run):
                out.append(run)
    return out


def compare(run_dir: Path) -> list[Pair]:
    """Each fault and rollout of the recorded run at ``run_dir`` next to its simulation."""
    from scalelab.faults.table import run_rows
    from scalelab.sim.engine import run_arm
    from scalelab.telemetry.store import load_run

    real = load_run(run_dir)
    scenario = real.scenario
    arm = str(real.manifest["arm"])
    real_rows = run_rows(real)
    with tempfile.TemporaryDirectory() as tmp:
        sim_rows = run_rows(load_run(run_arm(scenario, arm, tmp)))
    pairs = []
    for i, row in enumerate(real_rows):
        sim = sim_rows[i] if i < len(sim_rows) else None
        checks = tuple(Check(f, _num(row.get(f)), _num(sim.get(f)) if sim else None) for f in TOLERANCE)
        pairs.append(Pair(real.path.name, arm, str(real.manifest.get("platform", "")), str(row.get("kind", "")), checks, row, sim))
    return pairs


def _num(value: Any) -> float | None:
    if value is None:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return None if out != out else out


def render(pairs: Sequence[Pair]) -> str:
    """A plain-text table: real vs simulated per figure, and whether each is within tolerance."""
    head = ["run", "platform", "kind"] + [f"{FIGURES[f]} real / sim" for f in TOLERANCE] + ["within"]
    body = []
    for p in pairs:
        cells = [p.run, p.platform, p.kind]
        for c in p.checks:
            mark = "" if c.ok else " !"
            cells.append(f"{_show(c.real)} / {_show(c.sim)}{mark}")
        cells.append("yes" if p.ok else "NO")
        body.append(cells)
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(b, widths)) for b in body]
    return "\n".join(lines)


def _show(value: float | None) -> str:
    if value is None:
        return "never"
    return f"{value:g}" if float(value).is_integer() else f"{value:.2f}"
