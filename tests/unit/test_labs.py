"""The labs are runnable as written: structure, `make` targets that exist, `scalelab` commands the CLI accepts.

Nothing is executed: `make -n TARGET` only prints the recipe, and each `scalelab …` command is
parsed by click (`make_context`) down to its subcommand, as the shell would hand it over.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import warnings
from pathlib import Path

import click
import pytest

from scalelab.cli import cli

ROOT = Path(__file__).resolve().parents[2]
LABS = ROOT / "labs"
LAB_FILES = [
    "00-prerequisites.md",
    "01-compose-baseline.md",
    "02-compose-spike-manual-scaling.md",
    "03-kind-cluster-and-hpa.md",
    "04-compare-and-cost.md",
    "05-what-if-with-the-simulator.md",
    "06-write-your-own-autoscaler.md",
    "07-load-balancing.md",
    "08-swarm.md",
    "09-one-host-is-not-enough.md",
    "10-self-healing.md",
    "11-rolling-updates.md",
    "12-density.md",
    "99-cleanup.md",
]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
#: A clean environment for `make -n`: under `make test` the parent make exports MAKEFLAGS/MAKELEVEL.
MAKE_ENV = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")}
INLINE = re.compile(r"(?<!`)`((?:\.venv/bin/)?scalelab [^`]+)`(?!`)")


def _blocks(text: str, lang: str) -> list[str]:
    return [body for kind, body in FENCE.findall(text) if kind == lang]


def _commands(text: str) -> list[str]:
    lines = [ln.strip() for body in _blocks(text, "bash") for ln in body.splitlines()]
    return [ln for ln in lines if ln and not ln.startswith("#")]


def _scalelab_commands(text: str) -> list[str]:
    prose = FENCE.sub("", text)
    found = [c for c in _commands(text) if c.split()[0].endswith("scalelab")]
    return found + INLINE.findall(prose)


def _make_commands(text: str) -> list[list[str]]:
    return [shlex.split(c)[1:] for c in _commands(text) if c.startswith("make")]


def test_every_lab_is_there() -> None:
    assert sorted(p.name for p in LABS.glob("[0-9][0-9]-*.md")) == LAB_FILES
    assert (LABS / "instructor-guide.md").is_file()


@pytest.mark.parametrize("name", LAB_FILES)
def test_lab_reads_like_the_hard_way(name: str) -> None:
    text = (LABS / name).read_text(encoding="utf-8")
    assert text.startswith("# ")
    assert "In this lab you will" in text
    assert "\n## Prerequisites\n" in text and "\n## What just happened\n" in text and "\nNext:" in text
    steps = re.findall(r"^### (\d+)\. ", text, re.M)
    assert steps and steps == [str(i) for i in range(1, len(steps) + 1)], "steps are numbered ### 1. 2. 3. …"
    # each bash block is followed by "You should see something similar to:" and a text block
    for match in re.finditer(r"^```bash\n.*?^```\n", text, re.S | re.M):
        rest = text[match.end():]
        head = rest.lstrip("\n")
        if head.startswith("You should see something similar to:"):
            assert head.split("\n", 2)[2].lstrip("\n").startswith("```text\n"), f"{name}: output block after {match.group(0)!r}"
    outputs = len(re.findall(r"You should see something similar to:\n+```text\n", text))
    assert outputs >= len(steps), f"{name}: every step shows its output"
    assert "?" in text.split("## What just happened")[1], "discussion questions after the run"


def test_labs_use_the_makefile_targets() -> None:
    targets = {args[0] for name in LAB_FILES for args in _make_commands((LABS / name).read_text(encoding="utf-8")) if args}
    assert {"doctor", "lab01-up", "lab01-load", "lab02-spike", "scale", "lab-down", "lab03-cluster", "lab03-deploy", "lab03-spike",
            "report", "lab05-whatif", "lab99-cleanup", "demo", "lab08-up", "lab08-spike", "lab12-plan", "lab12-run", "lab12-show",
            "lab11-compose-recreate", "lab11-compose-double", "lab11-kubernetes", "lab11-kubernetes-naive", "lab11-table", "lab11-report"} <= targets


@pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed")
@pytest.mark.parametrize("name", LAB_FILES + ["instructor-guide.md"])
def test_every_make_target_in_a_lab_exists(name: str) -> None:
    for args in _make_commands((LABS / name).read_text(encoding="utf-8")):
        proc = subprocess.run(["make", "-n", "--no-print-directory", *args], cwd=ROOT, capture_output=True, text=True, timeout=60, env=MAKE_ENV)
        assert proc.returncode == 0, f"{name}: `make {' '.join(args)}` is not a target of the Makefile:\n{proc.stderr}"
        assert "scalelab" in proc.stdout or args[0] in ("setup", "wheelhouse", "jupyter"), f"`make {' '.join(args)}` has no recipe calling scalelab:\n{proc.stdout}"


def _parse(argv: list[str]) -> click.Context:
    """Resolve ``argv`` through the click groups and parse the leaf command's arguments."""
    ctx = cli.make_context("scalelab", list(argv), resilient_parsing=False)
    command: click.Command = cli
    while isinstance(command, click.Group):
        with warnings.catch_warnings():  # click 8.2 deprecates protected_args; 8.1 still needs it
            warnings.simplefilter("ignore", DeprecationWarning)
            rest = [*ctx.protected_args, *ctx.args]
        if not rest:
            break
        name, sub, rest = command.resolve_command(ctx, rest)
        assert sub is not None, f"unknown command {name}"
        ctx = sub.make_context(name, rest, parent=ctx)
        command = sub
    return ctx


@pytest.mark.parametrize("name", LAB_FILES + ["instructor-guide.md"])
def test_every_scalelab_command_in_a_lab_parses(name: str, tmp_path: Path) -> None:
    text = (LABS / name).read_text(encoding="utf-8")
    for command in _scalelab_commands(text):
        argv = shlex.split(command)[1:]
        # placeholders such as runs/<run-id> stand for a run directory the student has
        argv = [str(tmp_path) if "<" in a else a for a in argv]
        if len(argv) <= 2 and not any(a.startswith("-") for a in argv):
            argv.append("--help")  # a command named in prose ("`scalelab whatif` applied ..."): it must exist
        try:
            _parse(argv)
        except click.exceptions.Exit:  # --help
            pass
        except click.ClickException as exc:
            pytest.fail(f"{name}: `{command}` is not accepted by the CLI: {exc.format_message()}")


def test_the_parser_rejects_what_the_cli_rejects() -> None:
    with pytest.raises(click.UsageError):
        _parse(["report", "--no-such-option"])
    with pytest.raises(click.UsageError):
        _parse(["cluster", "sideways"])
    assert _parse(["whatif", "--vary", "target_cpu_pct=30,50"]).params["vary"] == ("target_cpu_pct=30,50",)


@pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed")
@pytest.mark.parametrize("name", LAB_FILES)
def test_shown_output_starts_with_the_recipe_make_runs(name: str) -> None:
    """Where a lab shows what `make X` prints, its first line is the command make really runs."""
    text = (LABS / name).read_text(encoding="utf-8")
    pattern = re.compile(r"^```bash\n(make [^\n]+)\n```\n+You should see something similar to:\n+```text\n([^\n]*)\n", re.M)
    checked = 0
    for command, first in pattern.findall(text):
        if "scalelab" not in first:
            continue
        proc = subprocess.run(["make", "-n", "--no-print-directory", *shlex.split(command)[1:]], cwd=ROOT, capture_output=True, text=True, timeout=60, env=MAKE_ENV)
        recipe = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
        assert " ".join(first.split()) == " ".join(recipe.split()), f"{name}: `{command}` runs `{recipe}`, the lab shows `{first}`"
        checked += 1
    assert checked or name == "99-cleanup.md" or "make" not in text
