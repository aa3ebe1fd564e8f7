"""The Swarm figures the kit quotes come from the committed recorded Swarm run (issue 13).

The simulator's Swarm start delay, the deploy-to-healthy time and the three-arm table in lab 08,
lab 04 and docs/swarm.md are what the recorded run and `scalelab report` give today: re-recording
the fixture, or changing how they are measured, fails here until the texts follow.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from scalelab.cli import cli
from scalelab.registry import platform_spec
from scalelab.sim.calibrate import calibrate
from scalelab.telemetry import load_run

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "runs"


def _swarm_run():  # type: ignore[no-untyped-def]
    (found,) = [p for p in sorted(FIXTURES.glob("*-classroom-spike-swarm-manual-*")) if (p / "manifest.json").is_file()]
    return load_run(found)


def _rows(text: str) -> list[str]:
    return [" ".join(line.split()) for line in text.splitlines() if line.startswith("│")]


def _flat(path: Path) -> str:
    return " ".join(path.read_text(encoding="utf-8").split())


def test_the_recorded_swarm_run_is_the_lessons_third_arm() -> None:
    run = _swarm_run()
    m = run.manifest
    assert m["platform"] == "swarm" and m["arm"] == "swarm-manual" and m["status"] == "completed"
    assert m["cpu_budget"] == 1.0 and m["scenario"] == "classroom-spike" and m["latency_objective_ms"] == 2000.0
    info = m["platform_info"]
    assert info["endpoint_mode"] == "dnsrr" and info["swarm_created_by_kit"] is True
    assert info["agent_cpu_limit_cores"] == pytest.approx(0.125) and 0 < info["deploy_to_healthy_s"] < m["up_s"]
    ev = run.events
    assert ev[ev["kind"] == "scale"]["replicas"].tolist() == [8]
    assert (ev["kind"] == "replica_ready").sum() >= 8
    assert run.samples["replicas_ready"].max() == 8 and len(run.placement) > 0


def test_the_simulators_swarm_start_delay_is_the_measured_one() -> None:
    cal = calibrate(_swarm_run())
    assert cal.start_delay_s is not None and cal.replicas_timed >= 5
    assert platform_spec("swarm").sim_start_delay_s == pytest.approx(round(cal.start_delay_s, 1))
    docs = _flat(ROOT / "docs" / "swarm.md")
    assert f"{cal.start_delay_s:.1f} s" in docs and _swarm_run().manifest["run_id"] in docs


def test_lab08_and_docs_quote_the_recorded_deploy_to_healthy_time() -> None:
    m = _swarm_run().manifest
    quoted = f"{m['platform_info']['deploy_to_healthy_s']:.1f} s"
    for path in (ROOT / "labs" / "08-swarm.md", ROOT / "docs" / "swarm.md"):
        assert quoted in _flat(path), f"{path.name} does not quote the recorded deploy-to-healthy time {quoted}"
    assert re.search(rf"ready after {m['up_s']:.1f} s", (ROOT / "labs" / "08-swarm.md").read_text(encoding="utf-8"))


def test_lab08_and_lab04_show_the_three_arm_report_of_the_committed_runs(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["report", str(FIXTURES), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    printed = _rows(result.output)
    assert [row.split("│")[1].strip() for row in printed] == ["compose-manual", "swarm-manual", "kubernetes-hpa"]
    for name in ("08-swarm.md", "04-compare-and-cost.md"):
        shown = _rows((ROOT / "labs" / name).read_text(encoding="utf-8"))
        assert set(printed) <= set(shown), f"{name} shows another table than `scalelab report tests/fixtures/runs`"
