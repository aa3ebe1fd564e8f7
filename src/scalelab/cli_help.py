"""One-line help of each `scalelab` command as `scalelab --help` lists it (never cut off with "...").

click shortens a command's docstring to fit the listing; these lines are written to fit instead.
`tests/unit/test_cli_help.py` checks that every command has one and that none is cut.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SHORT_HELP", "apply"]

SHORT_HELP: dict[str, str] = {
    "autoscale": "Pause or resume the kit's own scaler.",
    "calibrate": "Fit the simulator to a recorded run.",
    "clean": "Remove everything the kit started; keeps runs/.",
    "cluster": "The lab's kind cluster (lab 03).",
    "compare": "How close a simulated run came to a real one.",
    "demo": "Simulate the classroom spike on every arm.",
    "density": "How many containers one host holds (lab 12).",
    "doctor": "Check this machine for a lab path, with fixes.",
    "down": "Remove what the kit started on a platform.",
    "explain": "The HPA's decisions of a run, worked out by hand.",
    "image": "Build the ai-agent and load-balancer images.",
    "load": "Record steady load on a running service.",
    "report": "Charts, slides and a summary of recorded runs.",
    "run": "Record one arm of a scenario for real.",
    "scale": "Scale the running service by hand.",
    "scenarios": "List scenarios, or show one sized to this host.",
    "sim": "Simulate a scenario without Docker.",
    "strategies": "p95, errors, spread per front-door strategy.",
    "up": "Start the ai-agent by hand, wait until ready.",
    "watch": "Live charts of runs in a browser (127.0.0.1).",
    "whatif": "Sweep settings in the simulator: cost vs latency.",
    # cluster subcommands
    "cluster up": "Create or reuse the kind cluster.",
    "cluster down": "Delete the kind cluster.",
    "autoscale pause": "Pause the running scaler.",
    "autoscale resume": "Resume the running scaler.",
    "density plan": "Read the limits, predict the first wall.",
    "density run": "Ramp containers in batches, then remove them.",
    "density pods": "Fill one node past maxPods; pod start latency.",
    "density show": "Figures and chart of density runs.",
}


def apply(group: Any) -> None:
    """Set ``short_help`` on every command of ``group`` (and its subgroups) that has a line here."""
    import click

    def walk(g: click.Group, prefix: str) -> None:
        for name, cmd in g.commands.items():
            key = f"{prefix}{name}"
            if key in SHORT_HELP:
                cmd.short_help = SHORT_HELP[key]
            if isinstance(cmd, click.Group):
                walk(cmd, f"{key} ")

    walk(group, "")
