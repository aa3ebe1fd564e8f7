"""Small classroom fixes at the command line: help lines never cut with "...", no colour codes in
piped output, `make lab00-doctor` does something, `calibrate` never writes into the run it reads."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from scalelab.cli import cli

ROOT = Path(__file__).resolve().parents[2]
RUN = ROOT / "tests" / "fixtures" / "runs" / "20261123-163909-classroom-spike-compose-manual-f6e9"
MAKE_ENV = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")}


def _groups() -> list[tuple[list[str], click.Group]]:
    out = [([], cli)]
    out += [([name], cmd) for name, cmd in cli.commands.items() if isinstance(cmd, click.Group)]
    return out


@pytest.mark.parametrize("argv,group", _groups(), ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_command_lists_are_never_cut(argv: list[str], group: click.Group) -> None:
    result = CliRunner().invoke(cli, [*argv, "--help"], terminal_width=80)
    assert result.exit_code == 0
    listing = result.output.split("Commands:", 1)[1]
    assert "..." not in listing, f"a command's help is cut; give it a line in cli_help.SHORT_HELP:\n{listing}"
    assert all(name in listing for name in group.commands)


@pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed")
def test_make_help_has_no_colour_codes_when_piped() -> None:
    proc = subprocess.run(["make", "--no-print-directory", "help"], cwd=ROOT, capture_output=True, text=True, timeout=60, env=MAKE_ENV)
    assert proc.returncode == 0 and "lab00-doctor" in proc.stdout
    assert "\033" not in proc.stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed")
def test_make_lab00_doctor_runs_the_doctor() -> None:
    proc = subprocess.run(["make", "-n", "--no-print-directory", "lab00-doctor"], cwd=ROOT, capture_output=True, text=True, timeout=60, env=MAKE_ENV)
    assert proc.returncode == 0 and "scalelab doctor" in proc.stdout


def test_calibrate_writes_outside_the_run_and_refuses_inside(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = tmp_path / RUN.name
    shutil.copytree(RUN, run)
    before = sorted(p.name for p in run.iterdir())
    monkeypatch.chdir(tmp_path)
    ok = CliRunner().invoke(cli, ["calibrate", str(run)])
    assert ok.exit_code == 0, ok.output
    assert (tmp_path / "reports" / "calibration" / f"{RUN.name}.yaml").is_file()
    assert sorted(p.name for p in run.iterdir()) == before, "calibrate wrote into the run it read"
    refused = CliRunner().invoke(cli, ["calibrate", str(run), "--out", str(run / "calibration.yaml")])
    assert refused.exit_code != 0 and sorted(p.name for p in run.iterdir()) == before
