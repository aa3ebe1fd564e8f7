"""The simulator against the six recorded runs (tests/fixtures/recorded): issue 18's bars.

Each run is calibrated from itself (`scalelab calibrate`) and simulated with its scenario and
seed, so with the arrivals its load generator sent (`scalelab.sim.fidelity.predicted`);
the bars are those of docs/fidelity.md: replicas within ±1 for ≥ 95% of the seconds, seconds
over the objective and errors within max(10, 25%) of the recorded figures.

All six meet all three bars today. A run that falls out of a bar goes into ``KNOWN_GAPS`` with
the reason in docs/fidelity.md ("Where it stands"): it is then a strict xfail, so the day the
model brings it back within its bars this test fails until the gap is removed from here and from
the docs, and a looser guard keeps it from drifting further away unnoticed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from scalelab.sim.fidelity import Agreement, predicted, within
from scalelab.telemetry import list_runs, load_run

RECORDED = Path(__file__).resolve().parents[1] / "fixtures" / "recorded"
RUNS = {p.name: p for p in list_runs(RECORDED)}

#: Runs out of a bar today, with the bar they miss (docs/fidelity.md, "Where it stands"): none since
#: the replicas' queues lose at the timeout what the agent loses (the Kubernetes step's errors).
KNOWN_GAPS: dict[str, str] = {}


@pytest.fixture(scope="module")
def agreements(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Agreement]:
    root = tmp_path_factory.mktemp("fidelity")
    return {name: predicted(load_run(path), root / name) for name, path in RUNS.items()}


def test_the_six_recorded_runs_are_there() -> None:
    shapes = {(name.split("-classroom-")[1].split("-")[0], "kubernetes" if "kubernetes" in name else "compose") for name in RUNS}
    assert shapes == {(s, p) for s in ("spike", "wave", "step") for p in ("compose", "kubernetes")}
    assert set(KNOWN_GAPS) <= set(RUNS)


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=f"known gap: {KNOWN_GAPS[n]} (docs/fidelity.md)")) if n in KNOWN_GAPS else n
     for n in sorted(RUNS)],
)
def test_simulator_meets_the_bars(agreements: dict[str, Agreement], name: str) -> None:
    a = agreements[name]
    assert a.replicas_ok, f"{name}: replicas within ±1 for {a.within_1:.1%} of the seconds (bar 95%)"
    assert a.over_ok, f"{name}: {a.over_sim:.0f} s over the objective simulated against {a.over_real:.0f} recorded"
    assert a.errors_ok, f"{name}: {a.err_sim:.0f} errors simulated against {a.err_real:.0f} recorded"


def test_known_gaps_stay_where_the_docs_put_them(agreements: dict[str, Agreement]) -> None:
    """The runs out of a bar still meet the others, and miss theirs by no more than docs/fidelity.md says."""
    for name, missed in KNOWN_GAPS.items():
        a = agreements[name]
        assert a.replicas_ok
        if missed == "errors":
            assert a.over_ok
            assert within(a.err_real, a.err_sim, share=0.35), f"{name}: {a.err_sim:.0f} errors against {a.err_real:.0f}"
        else:
            assert a.errors_ok
            assert within(a.over_real, a.over_sim, floor=12.0, share=0.45), f"{name}: {a.over_sim:.0f} s against {a.over_real:.0f}"


def test_bars() -> None:
    assert within(100, 125) and within(100, 75) and not within(100, 126)
    assert within(3, 13) and not within(3, 14)  # the floor of 10 for small figures
    gap = Agreement("x", 0.94, 10, 10, 10, 10)
    assert not gap.replicas_ok and not gap.ok
    assert Agreement("x", 0.95, 64, 80, 204, 153).ok
