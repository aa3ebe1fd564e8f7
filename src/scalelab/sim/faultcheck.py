"""Real vs simulated faults and rollouts: the same scenario and arm, measured the same way.

`compare(run)` simulates a recorded run's own scenario (as sized for it, read from the run
directory) and arm, measures both with the faults table (`scalelab.faults.table`:
`scalelab.faults.measure` and, for rollouts, `scalelab.rollout.measure`), and checks three
figures against their tolerance (docs/fidelity.md, "Faults and rollouts"):

- failed requests: within max(2, 25% of the real count, 2·√m), m the simulated count: which
  arrivals meet a dead or hung replica is a coin toss per request, so the count spreads by
  about √m around its expectation (a binomial spreads less than that);
- the error window (first to last failure): within max(2 s, 25%);
- time to recovery: the sampled ready replicas back to their value before the fault (for a
  rollout: its wall time, start to every replica on the new version and ready), within
  max(2 s, 25%); "never" matches only "never".

The simulated figure is the median over `DRAWS` draws of the front door's random choices (the
arrivals are the scenario's, the same in every draw): the model's prediction, not one roll of
its dice. Where the draws themselves spread wider than the tolerance (an error window set by
two or three failures that may or may not happen at each step of a rollout), a real figure
inside their central range (all but the lowest and the highest draw, widened by the floor) is
as plausible as the median: `plausible`. Used by benchmarks/bench_faults_fidelity.py and tests/unit/test_sim_faults.py.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["TOLERANCE", "DRAWS", "Check", "Pair", "compare", "within", "plausible", "find_runs", "render", "simulated_rows", "FIGURES"]

#: figure -> (absolute floor, share of the real value); failed requests also allow 2·√(simulated)
TOLERANCE: dict[str, tuple[float, float]] = {"failed": (2.0, 0.25), "error_window_s": (2.0, 0.25), "to_desired_s": (2.0, 0.25)}
#: how each figure is shown
FIGURES = {"failed": "failed", "error_window_s": "error window (s)", "to_desired_s": "recovery (s)"}
#: draws of the front door's random choices per simulated run (odd: the median is one of them)
DRAWS = 9


def within(figure: str, real: float | None, sim: float | None) -> bool:
    """Whether a simulated figure is within the tolerance of the real one (None = never)."""
    if real is None or sim is None:
        return real is None and sim is None
    floor, share = TOLERANCE[figure]
    bound = max(floor, share * abs(real))
    if figure == "failed":
        bound = max(bound, 2.0 * math.sqrt(max(sim, 0.0)))
    return abs(sim - real) <= bound


def plausible(figure: str, real: float | None, draws: Sequence[float | None]) -> bool:
    """Whether the real figure is within tolerance of the draws' median, or inside the draws'
    central range (all but the lowest and the highest, ~80% of them with 9) widened by the
    tolerance's floor: where the model itself spreads (a window set by two or three failures that
    may or may not happen at each step), the real run is one more draw of the same spread."""
    ordered = sorted(math.inf if v is None else v for v in draws)
    if not ordered:
        return real is None
    median = ordered[len(ordered) // 2]
    if within(figure, real, None if math.isinf(median) else median):
        return True
    if real is None or len(ordered) < 5:
        return False
    floor = TOLERANCE[figure][0]
    return ordered[1] - floor <= real <= ordered[-2] + floor


@dataclass(frozen=True)
class Check:
    figure: str
    real: float | None
    #: the simulated figure of each draw (None = never)
    draws: tuple[float | None, ...]

    @property
    def sim(self) -> float | None:
        """The median of the draws."""
        ordered = sorted(math.inf if v is None else v for v in self.draws)
        return _finite(ordered[len(ordered) // 2]) if ordered else None

    @property
    def low(self) -> float | None:
        return _finite(min((math.inf if v is None else v for v in self.draws), default=math.inf))

    @property
    def high(self) -> float | None:
        return _finite(max((math.inf if v is None else v for v in self.draws), default=math.inf))

    @property
    def ok(self) -> bool:
        return plausible(self.figure, self.real, self.draws)


@dataclass(frozen=True)
class Pair:
    """One fault or rollout of a recorded run and its simulation."""

    run: str
    arm: str
    platform: str
    kind: str
    checks: tuple[Check, ...]
    at_s: float | None = None  # when the fault or the rollout came

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
    """Recorded (not simulated) run directories under ``roots`` that hold a fault or a rollout.

    Runs on the kit's hosts (a ``hosts.csv``: a scenario's ``hosts:``, lab 09) are left out: the
    simulator does not model a host's cap shared by its replicas (docs/hosts.md).
    """
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
            if platform != "sim" and not (run / "hosts.csv").is_file() and _is_disruption_run(run):
                out.append(run)
    return out


def simulated_rows(scenario: Any, arm: str, draw: int = 0) -> list[dict[str, Any]]:
    """The faults-table rows of one simulated draw of ``arm`` (no run directory written).

    Draw 0 is what `scalelab sim` writes; the fluid model runs once without the disruptions and
    `scalelab.sim.faults.disrupt` adds them, as the engine does.
    """
    from scalelab.faults.table import records_rows
    from scalelab.sim.engine import simulate
    from scalelab.sim.faults import disrupt
    from scalelab.sim.service import ServiceParams

    result = simulate(scenario.model_copy(update={"faults": (), "rollout": None}), arm)
    _name, model = scenario.arm(arm)
    disrupt(result, scenario, model, ServiceParams.for_arm(scenario, model), draw=draw)
    events = [{"t_s": e.t_s, "kind": e.kind, "detail": e.detail} for e in result.events]
    samples = [{"t_s": int(t), "replicas_ready": int(r)} for t, r in zip(result.columns["t_s"], result.columns["replicas_ready"])]
    return records_rows("sim", result.requests or [], events, samples)


def compare(run_dir: Path, *, draws: int = DRAWS, own_arrivals: bool = False) -> list[Pair]:
    """Each fault and rollout of the recorded run at ``run_dir`` next to its simulation: a
    prediction from the scenario alone, or (``own_arrivals``) with the moment the run's load
    generator started, as `scalelab calibrate` reads it (``sim.load_start_s``), so the model
    meets the very arrivals the run met."""
    from scalelab.faults.table import run_rows
    from scalelab.telemetry.store import load_run

    real = load_run(run_dir)
    scenario = real.scenario
    if own_arrivals:
        from scalelab.sim.calibrate import calibrate

        start = calibrate(real).load_start_s
        if start is not None:
            scenario = scenario.model_copy(update={"sim": scenario.sim.model_copy(update={"load_start_s": start})})
    arm = str(real.manifest["arm"])
    real_rows = run_rows(real)
    sims = [simulated_rows(scenario, arm, draw) for draw in range(draws)]
    pairs = []
    for i, row in enumerate(real_rows):
        checks = [Check(f, _num(row.get(f)), tuple(_num(s[i].get(f)) if i < len(s) else None for s in sims)) for f in TOLERANCE]
        pairs.append(Pair(real.path.name, arm, str(real.manifest.get("platform", "")), str(row.get("kind", "")), tuple(checks), _num(row.get("t_fault_s"))))
    return pairs


def _finite(value: float) -> float | None:
    return None if math.isinf(value) else value


def _num(value: Any) -> float | None:
    if value is None:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return None if out != out else out


def render(pairs: Sequence[Pair]) -> str:
    """A plain-text table: real / simulated median [lowest-highest of the draws] per figure, and
    whether each is within tolerance (``!`` marks one that is not)."""
    head = ["run", "platform", "kind"] + [f"{FIGURES[f]}: real / sim [range]" for f in TOLERANCE] + ["within"]
    body = []
    for p in pairs:
        cells = [p.run, p.platform, p.kind]
        for c in p.checks:
            spread = "" if c.low == c.high else f" [{_show(c.low)}-{_show(c.high)}]"
            cells.append(f"{_show(c.real)} / {_show(c.sim)}{spread}{'' if c.ok else ' !'}")
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
