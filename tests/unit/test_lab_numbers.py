"""The numbers the labs and the instructor guide quote are the numbers the commands print today.

Each test runs the command (or the function behind it) on the committed recorded runs or in the
simulator and compares with the lab's text, so re-recording a fixture run or changing the
simulator fails here until the labs are updated.
"""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from scalelab import analysis
from scalelab.cli import cli
from scalelab.hpa_math import decisions
from scalelab.sim import prepare_scenario, run_arm, run_scenario
from scalelab.telemetry import load_run
from scalelab.versions import VERSIONS

ROOT = Path(__file__).resolve().parents[2]
LABS = ROOT / "labs"
FIXTURES = ROOT / "tests" / "fixtures" / "runs"
K8S_RUN = FIXTURES / "20261204-232857-classroom-spike-kubernetes-hpa-910e"
COMPOSE_RUN = FIXTURES / "20261123-163909-classroom-spike-compose-manual-f6e9"


def _lab(name: str) -> str:
    return (LABS / name).read_text(encoding="utf-8")


def _rows(text: str) -> list[str]:
    """Table rows of a rich table (lines starting with │), whitespace-normalised."""
    return [" ".join(line.split()) for line in text.splitlines() if line.startswith("│")]


def _mmss(t: float) -> str:
    return f"{int(t) // 60}:{int(t) % 60:02d}"


def test_lab00_shows_the_pinned_component_versions() -> None:
    text = _lab("00-prerequisites.md").split("component versions", 1)[1]
    for key in ("scalelab", "kind", "metrics_server"):
        match = re.search(rf"│ {key}\s+│ (\S+)", text)
        assert match, f"lab 00 shows no {key} row"
        assert match.group(1) == VERSIONS[key], f"lab 00 shows {key} {match.group(1)}, the kit pins {VERSIONS[key]}"


def test_lab03_decision_worked_by_hand_is_the_runs_own() -> None:
    result = CliRunner().invoke(cli, ["explain", str(K8S_RUN)])
    assert result.exit_code == 0, result.output
    text = _lab("03-kind-cluster-and-hpa.md")
    assert _rows(result.output) and set(_rows(result.output)) <= set(_rows(text)), "lab 03 step 6 shows other rows than `scalelab explain` prints"
    table = decisions(load_run(K8S_RUN))
    capped = table[table["condition"].str.contains("ScaleUpLimit")]
    assert len(capped), "the run has a decision capped by a scale-up policy (the one lab 03 works out by hand)"
    first = capped.iloc[0]
    spelled = (f"**n = {first['from']}**", f"**u = {first['util_pct']:.0f}%**", f"**t = {first['target_pct']:.0f}%**",
               f"ceil({first['from']} × {first['util_pct']:.0f} / {first['target_pct']:.0f})", f"**{int(first['raw'])}**",
               f"**{int(first['policy_allows'])}**", first["condition"], f"At {first['at']}")
    for piece in spelled:
        assert piece in text, f"lab 03 step 6 does not say {piece!r}"
    assert first["policy_allows"] == first["to"] < first["raw"], "the decision worked by hand is capped by a policy"
    # the committed run is the students' three-node kind cluster, and lab 03 shows where its pods went
    nodes = set(load_run(K8S_RUN).placement["node"].dropna())
    assert nodes == {"scalelab-worker", "scalelab-worker2"}, f"the committed Kubernetes run ran on {nodes}, not on kind's two workers"


def test_lab04_report_table_is_the_committed_runs() -> None:
    result = CliRunner().invoke(cli, ["report", str(FIXTURES), "--out", str(ROOT / "reports" / "test-lab-numbers")])
    assert result.exit_code == 0, result.output
    text = _lab("04-compare-and-cost.md")
    assert set(_rows(result.output)) <= set(_rows(text)), "lab 04 step 1 shows another table than `scalelab report tests/fixtures/runs`"
    (charts,) = [line.rsplit(" in ", 1)[0] for line in result.output.splitlines() if line.startswith("charts:")]
    for name in ("01-compose-baseline.md", "02-compose-spike-manual-scaling.md", "03-kind-cluster-and-hpa.md", "04-compare-and-cost.md"):
        shown = [line.rsplit(" in ", 1)[0] for line in _lab(name).splitlines() if line.startswith("charts:")]
        assert shown == [charts], f"{name} lists other charts than `scalelab report` writes: {shown} vs {charts}"
    listed = text.split("ls reports/latest", 1)[1].split("```text\n", 1)[1].split("```", 1)[0].split()
    written = sorted(charts.removeprefix("charts: ").split(", ") + ["report.html", "summary.csv"])
    assert listed == written, f"lab 04 step 2 lists {listed}, the report writes {written}"


def test_lab04_day_costs_come_from_the_day_simulation(tmp_path: Path) -> None:
    sc = prepare_scenario("day", seed=7)
    runs = [load_run(d) for d in run_scenario(sc, tmp_path, seed=7)]
    printed = analysis.render_daily_cost(runs)
    text = _lab("04-compare-and-cost.md")
    assert set(_rows(printed)) <= set(_rows(text)), "lab 04 step 3 shows other $/day than `make sim SCENARIO=day`"


def test_guide_errors_last_after_capacity_arrived() -> None:
    run = load_run(COMPOSE_RUN)
    s = run.samples
    errors = s[s["errors"].fillna(0) > 0]
    peak = int(s["replicas_desired"].max())
    all_ready = s[(s["replicas_ready"] >= peak)]["t_s"].iloc[0]
    first, last = errors["t_s"].iloc[0], errors["t_s"].iloc[-1]
    assert last - all_ready >= 30, "the story of the guide: errors outlast the arrival of capacity"
    guide = _lab("instructor-guide.md")
    for moment in (f"first error is at {_mmss(first)}", f"all ready\n  at {_mmss(all_ready)}", f"until {_mmss(last)}",
                   f"{int(last - all_ready)} s after capacity arrived"):
        assert moment in guide, f"instructor guide does not say {moment!r}"


def test_lab05_zero_window_scales_down_before_the_spike_not_during_it(tmp_path: Path) -> None:
    key = "arms.kubernetes-hpa.scaler.behavior.scale_down.stabilization_window_s"
    runs = {w: load_run(run_arm(prepare_scenario("classroom-spike", overrides=[f"{key}={w}"]), "kubernetes-hpa", tmp_path / str(w)))
            for w in (0, 60)}
    start, end = analysis.spike_window_of(runs[0])

    def rescales(run):  # type: ignore[no-untyped-def]
        ev = run.events
        return [(float(t), int(n)) for t, n in ev[ev["kind"] == "hpa_rescale"][["t_s", "replicas"]].itertuples(index=False)]

    zero, sixty = rescales(runs[0]), rescales(runs[60])
    t0, n0 = zero[0]
    assert n0 == 2 and t0 <= start + 1, f"no window: the first decision is {zero[0]}, not a scale-down to 2 at the spike start"
    assert all(not (start < t < end and n < prev) for (t, n), (_, prev) in zip(zero[1:], zero)), "no window: a scale-down inside the spike"
    ups0 = [n for t, n in zero if t0 < t <= end]
    ups60 = [n for t, n in sixty if start < t <= end]
    text = " ".join(_lab("05-what-if-with-the-simulator.md").split())
    assert " → ".join(map(str, [2, *ups0])) in text, f"lab 05 should show the climb {[2, *ups0]}"
    assert " → ".join(map(str, [3, *ups60])) in text, f"lab 05 should show the climb {[3, *ups60]}"
    full0 = next(t for t, n in zero if n == 10)
    full60 = next(t for t, n in sixty if n == 10)
    assert f"ten pods {round(full0 - full60)} s later" in text
    assert f"from {_mmss(next(t for t, n in zero if t > end))}" in text


def test_lab05_and_lab06_show_todays_simulated_spike(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["sim", "classroom-spike", "--runs-dir", str(tmp_path), "--no-figure"])
    assert result.exit_code == 0, result.output
    printed = _rows(result.output)
    assert len(printed) == 6, "classroom-spike has six arms: the operator, three cooldowns of the threshold scaler, the operator on Swarm, the HPA"
    for name in ("05-what-if-with-the-simulator.md", "06-write-your-own-autoscaler.md"):
        assert set(printed) <= set(_rows(_lab(name))), f"{name} shows another table than `scalelab sim classroom-spike`"


def test_explain_finds_a_decision_whose_event_came_late() -> None:
    """The 10 -> 4 scale-down of the kind run changed the count at 175 s; its Event was recorded at 177.5 s."""
    table = decisions(load_run(K8S_RUN))
    moves = [(row["at"], row["from"], row["to"]) for _, row in table.iterrows()]
    assert ("2:55", 10, 4) in moves, moves
    assert len(moves) == analysis.summarize(load_run(K8S_RUN))["scale_actions"], "one decision per change of the count"


AUTOSCALERS = FIXTURES / "autoscalers"


def test_lab06_recorded_table_is_the_committed_runs(tmp_path: Path) -> None:
    """Issue 12's table: manual, threshold at cooldowns 0/30/120 s and the HPA, recorded, in one report."""
    runs = [load_run(p) for p in sorted(AUTOSCALERS.iterdir()) if (p / "manifest.json").is_file()] + [load_run(K8S_RUN), load_run(COMPOSE_RUN)]
    assert sorted(r.arm for r in runs) == ["compose-manual", "compose-threshold", "compose-threshold-0s", "compose-threshold-120s", "kubernetes-hpa"]
    assert {r.manifest["platform"] for r in runs} == {"compose", "kubernetes"}, "recorded runs, not simulated ones"
    assert {r.manifest["status"] for r in runs} == {"completed"}
    assert {r.manifest["scenario"] for r in runs} == {"classroom-spike"} and {r.manifest["cpu_budget"] for r in runs} == {1.0}
    # the same load for every arm; only the operator's November run predates per-request connections (lab 06 says so)
    assert len({r.scenario.load.model_dump_json(exclude={"connections", "client_connections"}) for r in runs}) == 1, "the same load for every arm"
    result = CliRunner().invoke(cli, ["report", str(COMPOSE_RUN), str(K8S_RUN), str(AUTOSCALERS), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    printed = _rows(result.output)
    assert len(printed) == 5
    assert set(printed) <= set(_rows(_lab("06-write-your-own-autoscaler.md"))), "lab 06 step 3 shows another table than the committed runs"
