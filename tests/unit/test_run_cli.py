"""`scalelab run` rejects a bad scenario or arm before anything starts: ERROR + fix, exit 1, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BAD = Path(__file__).resolve().parents[1] / "fixtures" / "scenarios" / "bad"


def run(*args: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "scalelab", *args], capture_output=True, text=True, timeout=60, cwd=tmp)


@pytest.mark.parametrize("name", ["unknown-field.yaml", "bad-duration.yaml", "bad-platform.yaml", "missing-load.yaml"])
def test_bad_scenario_file(name: str, tmp_path: Path) -> None:
    proc = run("run", str(BAD / name), "--runs-dir", str(tmp_path / "runs"), tmp=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.startswith("ERROR: ") and name in proc.stderr and "field '" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists()  # nothing started, nothing written


def test_unknown_arm_lists_the_choices(tmp_path: Path) -> None:
    proc = run("run", "classroom-spike", "--arm", "nope", "--runs-dir", str(tmp_path / "runs"), tmp=tmp_path)
    assert proc.returncode == 1
    assert "compose-manual" in proc.stderr and "kubernetes-hpa" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists()


def test_unknown_platform_is_a_usage_error(tmp_path: Path) -> None:
    proc = run("scale", "nomad", "3", tmp=tmp_path)
    assert proc.returncode == 2 and "compose" in proc.stderr
