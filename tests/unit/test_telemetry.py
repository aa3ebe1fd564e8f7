"""The run format: round trip, interrupted runs stay readable, one schema for everyone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from scalelab.cost import CostMeter
from scalelab.errors import RunFormatError
from scalelab.scenario import load_scenario
from scalelab.telemetry import SAMPLE_COLUMNS, RunWriter, list_runs, load_run, schema

REQUIRED = ["t_s", "utc", "arm", "replicas_desired", "replicas_ready", "cpu_cores_used", "cpu_util_pct", "rps", "p50_ms", "p95_ms", "errors", "users", "cost_usd_cum"]


def test_schema_has_required_columns() -> None:
    assert set(REQUIRED) <= set(SAMPLE_COLUMNS)


def _writer(tmp_path: Path, platform: str = "compose") -> RunWriter:
    scenario = load_scenario("classroom-spike", cpu_budget=2)
    return RunWriter.create(tmp_path, scenario=scenario, arm="compose-manual", platform=platform)


def test_round_trip(tmp_path: Path) -> None:
    meter = CostMeter(1.0)
    with _writer(tmp_path) as run:
        for t in range(5):
            run.sample(t_s=t, utc="2026-11-23T00:00:00Z", replicas_desired=3, replicas_ready=3, cpu_cores_used=0.2, rps=4.0, p50_ms=55.0, p95_ms=80.5, errors=0, users=4, cost_usd_cum=meter.add(3))
        run.event(2.0, "scale", replicas=8, source="manual-plan")
        run.requests([{"t_s": 0.5, "response_ms": 51.2, "ok": True, "status_code": 200, "replica": "a1", "error": ""}])
    loaded = load_run(run.dir)
    assert loaded.manifest["status"] == "completed"
    assert loaded.manifest["platform"] == "compose"
    assert loaded.manifest["scenario"] == "classroom-spike"
    for key in ("seed", "git_revision", "versions", "utc_start", "scaler", "arm"):
        assert key in loaded.manifest
    assert list(loaded.samples.columns) == list(SAMPLE_COLUMNS)
    assert len(loaded.samples) == 5
    assert loaded.samples["cost_usd_cum"].iloc[-1] == pytest.approx(15 / 3600, abs=1e-4)
    assert loaded.samples["arm"].unique().tolist() == ["compose-manual"]
    assert loaded.events.iloc[0]["kind"] == "scale"
    assert loaded.requests.iloc[0]["replica"] == "a1"
    assert loaded.scenario.cpu_budget == 2


def test_failure_and_interrupt_statuses(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError):
        with _writer(tmp_path / "a") as run:
            raise RuntimeError("boom")
    assert load_run(run.dir).manifest["status"] == "failed"
    assert "boom" in load_run(run.dir).manifest["error"]
    with pytest.raises(KeyboardInterrupt):
        with _writer(tmp_path / "b") as run2:
            run2.sample(t_s=0, replicas_desired=1, replicas_ready=1)
            raise KeyboardInterrupt
    loaded = load_run(run2.dir)
    assert loaded.manifest["status"] == "interrupted"
    assert len(loaded.samples) == 1


def test_unknown_column_rejected(tmp_path: Path) -> None:
    with _writer(tmp_path) as run:
        with pytest.raises(RunFormatError, match="unknown column"):
            run.sample(t_s=0, replicas=3)


def test_killed_writer_leaves_readable_run(tmp_path: Path) -> None:
    """A process killed mid-run (no cleanup at all) leaves every flushed row readable."""
    script = textwrap.dedent(
        f"""
        import time
        from scalelab.scenario import load_scenario
        from scalelab.telemetry import RunWriter
        run = RunWriter.create({str(tmp_path)!r}, scenario=load_scenario("ci-spike", cpu_budget=1), arm="compose-manual", platform="compose")
        for t in range(1000):
            run.sample(t_s=t, replicas_desired=2, replicas_ready=2)
            if t == 3:
                print(run.dir, flush=True)
            time.sleep(0.01)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    run_dir = Path(proc.stdout.readline().strip())
    time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    loaded = load_run(run_dir)
    assert loaded.manifest["status"] == "running"  # never finished: says so
    assert len(loaded.samples) >= 4
    assert loaded.samples["t_s"].tolist() == list(range(len(loaded.samples)))


def test_load_run_errors(tmp_path: Path) -> None:
    with pytest.raises(RunFormatError, match="not a run directory"):
        load_run(tmp_path)
    (tmp_path / schema.MANIFEST).write_text(json.dumps({"arm": "x"}))
    with pytest.raises(RunFormatError, match="samples.csv is missing"):
        load_run(tmp_path)


def test_list_runs_and_bad_platform(tmp_path: Path) -> None:
    with _writer(tmp_path, platform="sim") as run:
        pass
    assert list_runs(tmp_path) == [run.dir]
    assert load_run(run.dir).manifest["modeled_platform"] == "compose"
    with pytest.raises(RunFormatError, match="platform must be one of"):
        _writer(tmp_path, platform="nomad")
