"""`scalelab density plan|run|pods`: the click group, registered by `scalelab.cli`. No logic here."""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["density_grp"]

MODE_CHOICE = click.Choice(["runtime", "network", "workload"])
DENSITY_RUNS = click.option(
    "--runs-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/density"), show_default=True,
    help="Where density run directories go (kept apart from the load runs that `scalelab report` compares).",
)


@click.group("density")
def density_grp() -> None:
    """How many containers does one host hold? Predict the first wall, ramp safely, clean up (lab 12)."""


@density_grp.command("plan")
@click.option("--mode", "modes", type=MODE_CHOICE, multiple=True, help="Mode(s) to predict (default: all three).")
@click.option("--cap", type=click.IntRange(1, 100000), default=300, show_default=True, help="The ramp's hard cap, for the budget line.")
@click.option("--costs-from", "costs_from", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Use the per-container costs measured by this density run instead of the reference ones.")
@click.option("--json", "as_json", is_flag=True, help="Print the limits read, as JSON (a recorded limit set), and nothing else.")
def plan_cmd(modes: tuple[str, ...], cap: int, costs_from: Path | None, as_json: bool) -> None:
    """Read this host's limits, predict the first wall per mode with its error text, print the budget. Changes nothing."""
    from scalelab.density import containers, plan
    from scalelab.errors import ScalelabError

    try:
        kind, version = containers.engine_kind(containers.connect())
    except ScalelabError:  # the plan works without an engine; the run checks it
        kind, version = "none", ""
    limits = plan.read_host_limits(kind if kind != "none" else "local", version)
    if as_json:
        click.echo(plan.limits_json(limits), nl=False)
        return
    predictions = []
    for mode in modes or plan.MODES:
        costs = plan.costs_from_run(costs_from, mode) if costs_from else None
        predictions.append(plan.predict(limits, mode, cap=cap, costs=costs))
    click.echo(plan.render_plan(limits, predictions), nl=False)
    if kind == "none":
        click.echo("note: no Docker engine answers; daemon limits are read from /proc only if dockerd runs here")


@density_grp.command("run")
@click.option("--mode", type=MODE_CHOICE, default="runtime", show_default=True,
              help="runtime: minimal container, no network; network: on one bridge; workload: the real ai-agent.")
@click.option("--profile", type=click.Choice(["host", "laptop", "ci"]), default="host", show_default=True,
              help="Defaults for cap, batches and budget: host (300), laptop (100), ci (100, under 2 minutes).")
@click.option("--cap", type=click.IntRange(1, 5000), default=None, help="Hard cap on containers (default: the profile's).")
@click.option("--batch", type=click.IntRange(1, 500), default=None, help="First batch size (default: the profile's).")
@click.option("--growth", type=click.FloatRange(1.0, 4.0), default=None, help="Each batch is this many times the previous one.")
@click.option("--parallel", type=click.IntRange(1, 100), default=None, help="Starts in flight at once within a batch.")
@click.option("--budget", "budget_s", type=click.FloatRange(10, 7200), default=None, help="Wall-clock budget in seconds.")
@click.option("--load-limit", type=click.FloatRange(0.5, 1000), default=None, help="Stop when the 1-minute load exceeds this (default: 4 x CPUs, or the load at start + 2 x CPUs if higher).")
@click.option("--mem-floor-gib", type=click.FloatRange(0.25, 1024), default=None,
              help="Stop when MemAvailable falls below this (default: 20% of RAM, at least 2 GiB).")
@DENSITY_RUNS
def run_cmd(mode: str, profile: str, cap: int | None, batch: int | None, growth: float | None, parallel: int | None,
            budget_s: float | None, load_limit: float | None, mem_floor_gib: float | None, runs_dir: Path) -> None:
    """Start containers in growing batches until a stop rule fires; record every batch; remove them all."""
    from scalelab.density import ramp

    given = {"cap": cap, "batch": batch, "growth": growth, "parallel": parallel, "budget_s": budget_s}
    settings = {**ramp.PROFILES[profile], **{k: v for k, v in given.items() if v is not None}}
    cfg = ramp.RampConfig(mode=mode, profile=profile, load_limit=load_limit,
                          mem_floor_bytes=int(mem_floor_gib * 1024**3) if mem_floor_gib else None, **settings)
    result = ramp.run_ramp(cfg, runs_dir, say=lambda m: click.echo(f"• {m}", err=True))
    click.echo(ramp.render_result(result), nl=False)


@density_grp.command("pods")
@click.option("--kubeconfig", type=click.Path(dir_okay=False), default=None, help="kubeconfig (default: $KUBECONFIG, else ~/.kube/config).")
@click.option("--context", default=None, help="Context in it (default: kind-scalelab, or the file's current one).")
@click.option("--extra", type=click.IntRange(0, 100), default=10, show_default=True, help="Pods to ask for beyond the node's free pod slots.")
@click.option("--batch", type=click.IntRange(1, 200), default=20, show_default=True, help="Pods created per batch.")
@click.option("--budget", "budget_s", type=click.FloatRange(30, 3600), default=300, show_default=True, help="Wall-clock budget in seconds.")
@click.option("--image", default=None, help="A pause-like image already in the node's runtime (default: the cluster's sandbox image).")
@DENSITY_RUNS
def pods_cmd(kubeconfig: str | None, context: str | None, extra: int, batch: int, budget_s: float, image: str | None, runs_dir: Path) -> None:
    """Kubernetes: fill one node up to maxPods and past it ("Too many pods"); pod start latency against the 5 s SLO."""
    from scalelab.density import k8s

    result = k8s.run_pods(runs_dir, kubeconfig=kubeconfig, context=context, extra=extra, batch=batch, budget_s=budget_s, image=image,
                          say=lambda m: click.echo(f"• {m}", err=True))
    click.echo(k8s.render_result(result), nl=False)


@density_grp.command("show")
@click.argument("runs", nargs=-1, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", "out_file", type=click.Path(dir_okay=False, path_type=Path), default=Path("reports/density.png"), show_default=True,
              help="Where the latency-against-N chart goes.")
@DENSITY_RUNS
def show_cmd(runs: tuple[Path, ...], out_file: Path, runs_dir: Path) -> None:
    """The figures of density runs and one chart of start latency against N, walls marked.

    RUNS are density run directories; none: the newest finished run of each mode under --runs-dir.
    """
    from scalelab.density import figure

    dirs = list(runs) or figure.latest_runs(runs_dir)
    for d in dirs:
        click.echo(f"run: {d}")
        click.echo(figure.summary(d))
    click.echo(f"chart: {figure.density_figure(dirs, out_file)}")
