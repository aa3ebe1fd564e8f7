"""scalelab report and the what-if sweep, on simulated runs and on the committed recorded runs."""

from __future__ import annotations

import base64
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from scalelab import analysis, report, whatif
from scalelab.cli import cli
from scalelab.errors import RunFormatError, ScenarioError
from scalelab.plots import QUANTITIES
from scalelab.sim import prepare_scenario, run_arm
from scalelab.telemetry import load_run

FIXTURE_RUNS = Path(__file__).resolve().parents[1] / "fixtures" / "runs"


def recorded_fixture_runs() -> list[Path]:
    """The committed real runs (one per arm); fails, never skips, when they are missing."""
    dirs = sorted(p for p in FIXTURE_RUNS.iterdir() if (p / "manifest.json").is_file()) if FIXTURE_RUNS.is_dir() else []
    platforms = {load_run(d).manifest.get("platform") for d in dirs}
    assert {"compose", "swarm", "kubernetes"} <= platforms, f"recorded runs of the three arms must be committed under {FIXTURE_RUNS} (found {platforms or 'none'})"
    return dirs


@pytest.fixture(scope="module")
def sim_dirs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("runs")
    sc = prepare_scenario("ci-spike")
    return [run_arm(sc, "compose-manual", root), run_arm(sc, "kubernetes-hpa", root)]


def _check_report(dirs: list[Path], out: Path) -> None:
    runs = [load_run(d) for d in dirs]
    rep = report.build_report(runs, out)
    # files: one chart per quantity plus the combined one (and the spread of recorded runs), all real PNGs
    recorded = any(r.manifest.get("platform") != "sim" for r in runs)
    assert set(rep.figures) == set(QUANTITIES) | {"comparison"} | ({"spread"} if recorded else set())
    for path in rep.figures.values():
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
    # HTML: self-contained, every chart embedded
    page = rep.html.read_text(encoding="utf-8")
    assert not re.search(r'(src|href)="(?!data:)', page), "the page must not load anything from outside"
    assert "<link" not in page and "<script" not in page and "http://" not in page and "https://" not in page
    embedded = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(embedded) == len(rep.figures)
    assert {base64.b64decode(b) for b in embedded} == {p.read_bytes() for p in rep.figures.values()}
    # table: equal to what analysis computes from the runs
    expected = analysis.summary_table([load_run(d) for d in dirs])
    pd.testing.assert_frame_equal(rep.table.reset_index(drop=True), expected.reset_index(drop=True))
    csv = pd.read_csv(rep.csv)
    for key in ("seconds_over_objective", "errors", "replica_hours", "cost_usd", "peak_p95_ms"):
        assert csv[key].tolist() == pytest.approx(expected[key].astype(float).tolist())
    for cells in analysis.summary_rows(expected):
        assert "<td class=\"num\">" + cells[4] + "</td>" in page  # replica-hours as printed
        assert cells[0] in rep.text and cells[5] in rep.text  # the terminal table: arm and cost


def test_report_from_simulated_runs(sim_dirs: list[Path], tmp_path: Path) -> None:
    _check_report(sim_dirs, tmp_path / "report")


def test_report_from_committed_recorded_runs(tmp_path: Path) -> None:
    _check_report(recorded_fixture_runs(), tmp_path / "report")


def test_report_compares_compose_swarm_and_kubernetes_on_the_committed_runs(tmp_path: Path) -> None:
    """The lesson's three arms from the committed recorded runs, in its order, each in its role's colour."""
    from scalelab import figstyle, plots

    picked = report.latest_runs(FIXTURE_RUNS)
    runs = [load_run(d) for d in picked]
    assert [r.manifest["platform"] for r in runs] == ["compose", "swarm", "kubernetes"]
    assert [r.arm for r in runs] == ["compose-manual", "swarm-manual", "kubernetes-hpa"]
    assert {r.manifest["scenario"] for r in runs} == {"classroom-spike"} and {r.manifest["cpu_budget"] for r in runs} == {1.0}
    assert {r.manifest["latency_objective_ms"] for r in runs} == {2000.0}, "one objective for all three arms"
    colors = plots.arm_colors(runs)
    assert colors == [figstyle.ROLE_COLORS[role] for role in ("manual", "swarm-manual", "hpa")] and len(set(colors)) == 3
    rep = report.build_report(runs, tmp_path / "three")
    assert rep.table["label"].tolist() == ["compose-manual", "swarm-manual", "kubernetes-hpa"]
    assert "compose-manual vs swarm-manual vs kubernetes-hpa" in rep.text
    page = rep.html.read_text(encoding="utf-8")
    for color in colors:
        assert f'class="swatch" style="background:{color}"' in page
    # both operators scaled to 8 at 1:00 and nobody scaled back down; the HPA scaled up and back down by itself
    swarm, compose, hpa = (rep.table.loc[name] for name in ("swarm-manual", "compose-manual", "kubernetes-hpa"))
    for manual in (compose, swarm):
        assert manual["peak_replicas"] == 8 and manual["first_scale_up_s"] == pytest.approx(30.0, abs=1.5) and pd.isna(manual["scale_down_s"])
    assert hpa["scale_down_s"] is not None and not pd.isna(hpa["scale_down_s"])
    # the CLI prints the same three rows for the folder of runs
    res = CliRunner().invoke(cli, ["report", str(FIXTURE_RUNS), "--out", str(tmp_path / "cli")])
    assert res.exit_code == 0, res.output
    assert [line.split("│")[1].strip() for line in res.output.splitlines() if line.startswith("│")] == ["compose-manual", "swarm-manual", "kubernetes-hpa"]


def test_latest_runs_prefers_recorded_and_newest(sim_dirs: list[Path], tmp_path: Path) -> None:
    root = tmp_path / "runs"
    root.mkdir()
    for d in sim_dirs:
        shutil.copytree(d, root / d.name)
    assert [p.name for p in report.latest_runs(root)] == sorted(d.name for d in sim_dirs)
    # a newer simulated run wins over an older one; a running one is ignored
    newer = run_arm(prepare_scenario("ci-spike"), "kubernetes-hpa", root, extra=None)
    picked = report.latest_runs(root)
    assert newer in picked and len(picked) == 2
    (root / "29990101-000000-ci-spike-kubernetes-hpa-ffff").mkdir()
    running = load_run(newer).manifest | {"status": "running"}
    (root / "29990101-000000-ci-spike-kubernetes-hpa-ffff" / "manifest.json").write_text(__import__("json").dumps(running))
    shutil.copy(newer / "samples.csv", root / "29990101-000000-ci-spike-kubernetes-hpa-ffff")
    assert newer in report.latest_runs(root)
    # a recorded (non-sim) run wins over a newer simulated one
    real = root / "20000101-000000-ci-spike-compose-manual-aaaa"
    shutil.copytree(sim_dirs[0], real)
    manifest = load_run(real).manifest | {"platform": "compose"}
    (real / "manifest.json").write_text(__import__("json").dumps(manifest))
    assert real in report.latest_runs(root)


def test_latest_runs_without_runs_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(RunFormatError) as err:
        report.latest_runs(tmp_path)
    assert "make demo" in err.value.render() and "04-compare-and-cost" in err.value.render()


def test_report_command(sim_dirs: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = CliRunner().invoke(cli, ["report", *map(str, sim_dirs), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "compose-manual (sim)" in res.output and "report.html" in res.output
    assert (out / "report.html").is_file() and (out / "replicas.png").is_file()


def test_sweep_varies_the_setting_and_compares(tmp_path: Path) -> None:
    table = whatif.sweep("ci-spike", "kubernetes-hpa", {"target_cpu_pct": [30, 90]}, compare_with=["compose-manual"])
    assert table["setting"].tolist() == ["target_cpu_pct=30", "target_cpu_pct=90", "compose-manual as written"]
    low, high, manual = (table.iloc[i] for i in range(3))
    assert low["cost_usd"] > high["cost_usd"]  # a lower target keeps more replicas
    assert manual["arm"] == "compose-manual" and manual["scale_down_s"] is None or pd.isna(manual["scale_down_s"])
    # the same figures as a simulated run summarised by analysis
    sc = prepare_scenario("ci-spike", overrides=["arms.kubernetes-hpa.scaler.target_cpu_pct=90"])
    direct = analysis.summarize(load_run(run_arm(sc, "kubernetes-hpa", tmp_path)))
    assert high["cost_usd"] == pytest.approx(direct["cost_usd"]) and high["errors"] == direct["errors"]
    path = whatif.sweep_figure(table, tmp_path / "sweep.png")
    assert path.read_bytes()[:4] == b"\x89PNG"
    assert "target_cpu_pct=30" in whatif.render_sweep(table)


def test_sweep_keys() -> None:
    assert whatif.full_key("target_cpu_pct", "kubernetes-hpa") == "arms.kubernetes-hpa.scaler.target_cpu_pct"
    assert whatif.full_key("load.factor", "kubernetes-hpa") == "load.factor"
    assert whatif.parse_vary(["max_replicas=6, 10", "load.factor=5"]) == {"max_replicas": ["6", "10"], "load.factor": ["5"]}
    with pytest.raises(ScenarioError):
        whatif.parse_vary(["target_cpu_pct"])
    with pytest.raises(ScenarioError):  # a wrong key names the field
        whatif.sweep("ci-spike", "kubernetes-hpa", {"no_such_field": [1]})


def test_latest_runs_keep_to_one_scenario(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    spike = prepare_scenario("ci-spike")
    first = [run_arm(spike, arm, root) for arm in ("compose-manual", "kubernetes-hpa")]
    other = run_arm(prepare_scenario("classroom-spike"), "compose-manual", root)  # newest, another scenario
    assert report.latest_runs(root) == [other]
    newest_spike = run_arm(spike, "compose-manual", root)
    assert report.latest_runs(root) == [newest_spike, first[1]]


def test_latest_runs_skip_steady_load_runs_of_the_same_scenario(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    spike = prepare_scenario("ci-spike")
    both = [run_arm(spike, arm, root) for arm in ("compose-manual", "kubernetes-hpa")]
    steady = run_arm(prepare_scenario("ci-spike", overrides=["load.profile=steady"]), "compose-manual", root)
    assert report.latest_runs(root) == [steady]  # the newest run alone: nothing else was steady
    newer = run_arm(spike, "kubernetes-hpa", root)
    assert report.latest_runs(root) == [both[0], newer]
