"""analysis, plots, calibrate and compare on run directories written by RunWriter (sim runs)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from scalelab import analysis
from scalelab.errors import RunFormatError
from scalelab.plots import comparison_figure
from scalelab.sim import prepare_scenario, run_arm
from scalelab.sim.calibrate import calibrate, write_calibration
from scalelab.telemetry import RunWriter, load_run


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("runs")
    base = prepare_scenario("classroom-spike", seed=7)
    slow = prepare_scenario("classroom-spike", seed=7, overrides=["arms.kubernetes-hpa.scaler.sync_period_s=15s", "arms.kubernetes-hpa.scaler.metric_resolution_s=60s", "workload.work_ms=60"])
    return {
        "compose": load_run(run_arm(base, "compose-manual", root)),
        "hpa": load_run(run_arm(base, "kubernetes-hpa", root)),
        "hpa_slow": load_run(run_arm(slow, "kubernetes-hpa", root)),
    }


def test_summarize_compose(runs: dict) -> None:
    s = analysis.summarize(runs["compose"])
    samples = runs["compose"].samples
    assert s["peak_replicas"] == 8
    assert s["first_scale_up_s"] == 30.0  # operator at 1:00, spike at 0:30
    assert s["scale_down_s"] is None  # nobody scales back down
    assert s["replica_hours"] == pytest.approx(samples["replicas_desired"].sum() / 3600)
    assert s["cost_usd"] == pytest.approx(s["replica_hours"] * 1.0)
    assert s["seconds_over_objective"] == float((samples["p95_ms"] > 500).sum())
    assert s["errors"] == pytest.approx(samples["errors"].sum())
    assert s["peak_p95_ms"] == pytest.approx(samples["p95_ms"].max())
    assert s["scale_actions"] == 1  # the operator's one command, 3 -> 8


def test_scale_actions_count_every_change_of_the_desired_count() -> None:
    import pandas as pd

    samples = pd.DataFrame({"replicas_desired": [3, 3, 2, 2, 3, 4, 4, 4, 3, None, 3]})
    assert analysis.scale_actions(samples) == 4  # 3->2, 2->3, 3->4, 4->3; a missing second is no action
    assert analysis.scale_actions(pd.DataFrame({"replicas_desired": [5] * 10})) == 0


def test_summary_table_and_render(runs: dict) -> None:
    table = analysis.summary_table([runs["compose"], runs["hpa"]])
    assert list(table.index) == ["compose-manual (sim)", "kubernetes-hpa (sim)"]
    text = analysis.render_summary(table)
    assert "compose-manual (sim)" in text and "never" in text and "s over SLO" in text


def test_no_per_day_figure_from_a_spike_run(runs: dict) -> None:
    """Issue 11: a 4-minute spike multiplied up to 24 hours is not a day; per-day cost needs a day run."""
    for run in (runs["compose"], runs["hpa"]):
        with pytest.raises(RunFormatError, match="does not scale to a day"):
            analysis.cost_per_day(run)
        with pytest.raises(RunFormatError, match="spike. run"):
            analysis.render_daily_cost([run])


def test_daily_cost_of_a_compressed_day(tmp_path: Path) -> None:
    """A day compressed into 2 hours (like a recorded compressed day) is priced as the whole day."""
    sc = prepare_scenario("day", overrides=["duration_s=2h", "load.ramp_s=60"])
    run = load_run(run_arm(sc, "manual-peak-sized", tmp_path))
    c = analysis.cost_per_day(run)
    assert c["usd_per_day"] == pytest.approx(c["cost_usd"] * 12)
    assert c["usd_per_day"] == pytest.approx(8 * 24 * 1.0)  # 8 replicas all day at $1 per replica-hour
    assert c["usd_per_year"] == pytest.approx(c["usd_per_day"] * 365)
    assert "$/year" in analysis.render_daily_cost([run])


def test_compare_identical_and_different_runs(runs: dict) -> None:
    same = analysis.compare(runs["hpa"], runs["hpa"])
    assert same["replicas_within_1_share"] == 1.0
    assert same["first_scale_up_diff_s"] == 0.0 and same["cost_diff_usd"] == 0.0
    diff = analysis.compare(runs["hpa"], runs["hpa_slow"])
    assert diff["seconds_compared"] == 240
    assert diff["replicas_within_1_share"] < 1.0
    assert diff["first_scale_up_diff_s"] > 0  # 60 s metrics and a 15 s sync react later
    s_fast, s_slow = analysis.summarize(runs["hpa"]), analysis.summarize(runs["hpa_slow"])
    assert diff["cost_diff_usd"] == pytest.approx(s_slow["cost_usd"] - s_fast["cost_usd"])
    vs_compose = analysis.compare(runs["hpa"], runs["compose"])
    assert vs_compose["scale_down_diff_s"] is None  # compose never scales down


def test_calibrate_recovers_the_model_settings(runs: dict, tmp_path: Path) -> None:
    cal = calibrate(runs["compose"])
    assert cal.work_ms == pytest.approx(50.0, rel=0.02)
    assert cal.start_delay_s == pytest.approx(1.0)  # compose: scale -> container running
    assert cal.warmup_s == pytest.approx(5.0)
    slow = calibrate(runs["hpa_slow"])
    assert slow.work_ms == pytest.approx(60.0, rel=0.02)
    assert slow.start_delay_s == pytest.approx(2.0)  # kubernetes: scheduling + start
    out = yaml.safe_load(write_calibration(slow, tmp_path / "cal.yaml").read_text())
    key, value = out["set"][0].split("=")
    assert key == "workload.work_ms" and float(value) == pytest.approx(60.0, rel=0.02)
    # the overrides feed straight back into the simulator
    assert prepare_scenario("classroom-spike", overrides=out["set"]).workload.work_ms == pytest.approx(60.0, rel=0.01)
    assert "sim.start_delay_s=2.00" in out["set"] and prepare_scenario("classroom-spike", overrides=out["set"]).sim.start_delay_s == 2.0


def test_calibrate_finds_the_scrape_phase_a_simulated_run_used(tmp_path: Path) -> None:
    sc = prepare_scenario("classroom-spike", seed=7, overrides=["sim.scrape_phase_s=11"])
    run = load_run(run_arm(sc, "kubernetes-hpa", tmp_path))
    cal = calibrate(run)
    assert cal.scrape_phase_s is not None and 0 <= cal.scrape_phase_s < 15
    again = load_run(run_arm(sc.model_copy(update={"sim": sc.sim.model_copy(update={"scrape_phase_s": cal.scrape_phase_s})}), "kubernetes-hpa", tmp_path))
    assert analysis.compare(run, again)["replicas_within_1_share"] == 1.0
    assert cal.host_overhead_cores is not None and cal.host_overhead_cores < 0.2  # the model gives the replicas the whole budget


def test_calibrate_recovers_the_host_overhead_of_a_host_limited_run(tmp_path: Path) -> None:
    # 1 core, 0.3 of it taken by the host's other work: after the operator's scale to 8 x 0.125 cores the
    # replicas want more than the host leaves them, and calibrate reads what they got while requests waited
    sc = prepare_scenario("classroom-spike", cpu_budget=1, overrides=["sim.host_overhead_cores=0.3"])
    run = load_run(run_arm(sc, "compose-manual", tmp_path))
    assert calibrate(run).host_overhead_cores == pytest.approx(0.3, abs=0.03)


def test_calibrate_needs_load(tmp_path: Path) -> None:
    sc = prepare_scenario("classroom-spike")
    with RunWriter.create(tmp_path, scenario=sc, arm="compose-manual", platform="sim") as w:
        w.sample(t_s=0, replicas_desired=3, replicas_ready=3, rps=0, cpu_cores_used=0.0)
    with pytest.raises(RunFormatError, match="no second"):
        calibrate(load_run(w.dir))


def test_comparison_figure_is_written(runs: dict, tmp_path: Path) -> None:
    path = comparison_figure([runs["compose"], runs["hpa"]], tmp_path / "fig.png")
    assert path.stat().st_size > 50_000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_table_for_a_profile_without_a_spike(tmp_path) -> None:
    from scalelab.sim import prepare_scenario, simulate_runs

    sc = prepare_scenario("classroom-spike", seed=3, overrides=["load.profile=wave", "load.period_s=120"])
    hpa = simulate_runs(sc, tmp_path, arms=["kubernetes-hpa"])[0]
    table = analysis.compare_table(hpa, hpa)
    by = table.set_index("figure")
    assert by.iloc[0]["agreement"] == 100.0
    high = analysis.high_load_seconds(hpa.samples)
    assert 0.3 < high.mean() < 0.7  # a sine spends about half its time in the upper half
    p95 = by.loc["p95 during high load, median of seconds (ms)"]
    assert p95["real"] == p95["sim"] and p95["real"] > 0 and p95["sim - real"] == 0
    text = analysis.render_compare(table)
    assert "seconds over the latency objective" in text and "errors" in text and "n/a" in text
