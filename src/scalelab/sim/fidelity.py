"""Issue 18's agreement bars between a recorded run and the simulator (docs/fidelity.md).

One place for the figures and the bars, so that the benchmark (`benchmarks/bench_fidelity.py`)
and the unit test on the recorded fixtures (`tests/unit/test_fidelity.py`) judge the same way:

- replicas (desired): the simulated count within ±1 of the recorded one for at least 95% of the seconds;
- seconds over the latency objective: within max(10 s, 25% of the recorded figure);
- errors: within max(10, 25% of the recorded figure).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

__all__ = ["REPLICAS_WITHIN_1_SHARE", "DRAWS", "Agreement", "agreement", "predicted", "within", "simulated_like"]

#: The replica bar: share of the seconds with the simulated count within ±1 of the recorded one.
REPLICAS_WITHIN_1_SHARE = 0.95
#: Seconds over the objective and errors: within max(floor, share × the recorded figure).
FLOOR = 10.0
SHARE = 0.25


def within(real: float, sim: float, floor: float = FLOOR, share: float = SHARE) -> bool:
    """Whether a simulated figure is within max(floor, share × |real|) of the recorded one."""
    return abs(sim - real) <= max(floor, share * abs(real))


@dataclass(frozen=True)
class Agreement:
    """One recorded run against its simulation: the figures and whether each bar is met."""

    run: str
    within_1: float | None
    over_real: float
    over_sim: float
    err_real: float
    err_sim: float
    jain_real: float | None = None
    jain_sim: float | None = None

    @property
    def replicas_ok(self) -> bool:
        return self.within_1 is not None and self.within_1 >= REPLICAS_WITHIN_1_SHARE

    @property
    def over_ok(self) -> bool:
        return within(self.over_real, self.over_sim)

    @property
    def errors_ok(self) -> bool:
        return within(self.err_real, self.err_sim)

    @property
    def ok(self) -> bool:
        return self.replicas_ok and self.over_ok and self.errors_ok

    def as_dict(self) -> dict[str, Any]:
        return {"run": self.run, "within_1": self.within_1, "over_real": self.over_real, "over_sim": self.over_sim,
                "err_real": self.err_real, "err_sim": self.err_sim, "jain_real": self.jain_real, "jain_sim": self.jain_sim}


#: Arrival draws a prediction averages over: one, the run's own seed, whose arrivals are the ones
#: the recorded run's load generator sent (the simulator replays them, `engine._open_arrivals`).
DRAWS = 1


def simulated_like(real: Any, runs_root: str | os.PathLike[str], *, calibrated: bool = True, draws: int = 1) -> list[Any]:
    """The recorded run's own (sized) scenario simulated for its arm, calibrated from the run itself
    (`scalelab calibrate`) unless ``calibrated`` is False, with the run's seed and the ``draws - 1``
    seeds after it (other arrival draws of the same load); returns the simulated `Run`s."""
    from scalelab.sim.calibrate import calibrate, fitted_scenario
    from scalelab.sim.engine import simulate_runs
    from scalelab.telemetry.store import shared_provenance

    scenario = fitted_scenario(real.scenario, calibrate(real)) if calibrated else real.scenario
    with shared_provenance():  # one git and version lookup for all draws
        return [simulate_runs(scenario, runs_root, arms=[real.arm], seed=scenario.seed + k, workers=1)[0] for k in range(draws)]


def agreement(real: Any, sims: Any) -> Agreement:
    """The bars' figures for a recorded run and simulated ones (`analysis.compare`,
    `analysis.summarize`): with several simulated runs, the mean of each figure over them."""
    from scalelab.analysis import compare, summarize

    sims = list(sims) if isinstance(sims, (list, tuple)) else [sims]
    r = summarize(real)
    within_1 = [compare(real, sim)["replicas_within_1_share"] for sim in sims]
    figures = [summarize(sim) for sim in sims]
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    jain = [f["spread_jain"] for f in figures if f.get("spread_jain") is not None]
    return Agreement(real.path.name, None if None in within_1 else mean(within_1), float(r["seconds_over_objective"]),
                     mean([float(f["seconds_over_objective"]) for f in figures]), float(r["errors"]), mean([float(f["errors"]) for f in figures]),
                     r.get("spread_jain"), mean(jain) if jain else None)


def predicted(real: Any, runs_root: str | os.PathLike[str], *, draws: int = DRAWS) -> Agreement:
    """The simulator's prediction for a recorded run, calibrated from it (the load generator's
    start among the fitted figures, so the simulated run meets the arrivals the recorded one met);
    with ``draws`` > 1 the mean over as many seeds from the run's own (other arrivals of the same
    load: how much a figure owes to the draw)."""
    return agreement(real, simulated_like(real, runs_root, draws=draws))
