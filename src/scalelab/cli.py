"""The `scalelab` command line: parse arguments, call the package, print errors. No logic here.

Errors from the package (`ScalelabError`) print as ``ERROR: ...`` with the fix on stderr and
exit 1; usage errors exit 2; tracebacks only with ``-v``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from scalelab.doctor import paths as doctor_paths
from scalelab.errors import ScalelabError
from scalelab.registry import platform_names

CPU_BUDGET = click.option(
    "--cpu-budget",
    type=float,
    default=None,
    help="Cores the workload may use (default: detected, CPUs minus one). Scales CPU and load.",
)
RUNS_DIR = click.option(
    "--runs-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("runs"), show_default=True, help="Where run directories go."
)
# kubernetes platform: which cluster (kind by default, or any kubeconfig); ignored by compose
KUBECONFIG_OPT = click.option(
    "--kubeconfig", type=click.Path(dir_okay=False), default=None, help="Kubernetes: kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)."
)
CONTEXT_OPT = click.option(
    "--context", default=None, help="Kubernetes: kubeconfig context (default: kind-scalelab, or the file's current context with --kubeconfig/$KUBECONFIG)."
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Show tracebacks and every external command.")
@click.version_option(package_name="scalelab")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """scalelab: the same service and load spike on docker compose and on Kubernetes, measured."""
    ctx.ensure_object(dict)
    ctx.obj["verbose"] = verbose
    if verbose:
        import os

        os.environ["SCALELAB_DEBUG"] = "1"


# --- doctor -------------------------------------------------------------------------------------


@cli.command()
@click.option(
    "--platform",
    "platform_",
    type=click.Choice(doctor_paths()),
    default="sim",
    show_default=True,
    help="The path you want to run; the exit status says whether it can.",
)
@click.option("--port", type=click.IntRange(1, 65535), multiple=True, help="Extra ports that must be free (default: the kit's own).")
def doctor(platform_: str, port: tuple[int, ...]) -> None:
    """Check this machine: tools, engine, cluster, ports, CPU and memory, with a fix for each problem."""
    from scalelab import doctor as doc

    report = doc.check(platform_, extra_ports=port)
    doc.print_report(report)
    sys.exit(0 if report.ok else 1)


@cli.command("clean")
@click.option("--cluster", is_flag=True, help="Also delete the kind cluster (lab 99).")
@click.option("--kubeconfig", default=None, help="Kubeconfig of the cluster to clean (default: $KUBECONFIG or ~/.kube/config).")
@click.option("--context", default=None, help="Context in that kubeconfig (default: kind-scalelab if present, else current).")
def clean_cmd(cluster: bool, kubeconfig: str | None, context: str | None) -> None:
    """Remove everything the kit started (compose projects, run namespaces; --cluster: kind). Keeps runs/."""
    from scalelab.cleanup import clean

    for step in clean(cluster=cluster, kubeconfig=kubeconfig, context=context, say=lambda m: click.echo(f"• {m}", err=True)):
        if step.skipped:
            click.echo(f"{step.name}: nothing to do ({step.skipped})")
        else:
            click.echo(f"{step.name}: " + (f"removed {', '.join(step.removed)}" if step.removed else "nothing was running"))


# --- scenarios ----------------------------------------------------------------------------------


@cli.command("scenarios")
@click.argument("scenario", required=False)
@CPU_BUDGET
def scenarios_cmd(scenario: str | None, cpu_budget: float | None) -> None:
    """List built-in scenarios, or validate and show one (name or YAML path) sized to this host."""
    from scalelab import scenario as sc

    if scenario is None:
        for name, path in sorted(sc.builtin_scenarios().items()):
            s = sc.load_scenario(path, sized=False)
            click.echo(f"{name:<18} {s.duration_s:>7.0f} s  arms: {', '.join(s.arms)}")
        return
    s = sc.load_scenario(scenario, cpu_budget=cpu_budget)
    import yaml

    click.echo(yaml.safe_dump(s.model_dump(mode="json", exclude={"source"}), sort_keys=False).rstrip())


# --- sim commands (sim, calibrate, compare, demo) -----------------------------------------------


@cli.command("sim")
@click.argument("scenario")
@click.option("--arm", default=None, help="Simulate only this arm (default: all arms).")
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=None, help="Random seed (default: the scenario's). Same seed, same numbers.")
@click.option(
    "--cpu-budget",
    type=float,
    default=None,
    help="Cores to size the scenario to (default: its reference budget, so everyone sees the same numbers).",
)
@RUNS_DIR
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE", help="What if: override a scenario field, e.g. load.factor=20.")
@click.option("--figure/--no-figure", default=False, help="Also draw the comparison figure next to the runs.")
def sim_cmd(scenario: str, arm: str | None, seed: int | None, cpu_budget: float | None, runs_dir: Path, settings: tuple[str, ...], figure: bool) -> None:
    """Simulate a scenario (built-in name or YAML path) without Docker; write run directories."""
    from scalelab import analysis
    from scalelab.sim import prepare_scenario, simulate_runs

    sc = prepare_scenario(scenario, cpu_budget=cpu_budget, seed=seed, overrides=settings)
    runs = simulate_runs(sc, runs_dir, arms=[arm] if arm else None, seed=seed)
    dirs = [r.path for r in runs]
    for d in dirs:
        click.echo(f"run: {d}")
    click.echo(analysis.render_summary(analysis.summary_table(runs), title=f"{sc.name} (simulated, seed {sc.seed})"), nl=False)
    if sc.load.profile == "day" or sc.duration_s >= 86400:
        click.echo(analysis.render_daily_cost(runs), nl=False)
    if figure:
        from scalelab.plots import comparison_figure

        click.echo(f"figure: {comparison_figure(runs, runs_dir / f'{dirs[0].name[:15]}-{sc.name}-comparison.png')}")


@cli.command("demo")
@RUNS_DIR
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=None, help="Random seed (default: the scenario's).")
def demo_cmd(runs_dir: Path, seed: int | None) -> None:
    """The classroom spike on compose (manual) and Kubernetes (HPA), simulated: runs, figure, summary."""
    from scalelab.demo import run_demo

    result = run_demo(runs_dir, seed=seed)
    for d in result.run_dirs:
        click.echo(f"run: {d}")
    click.echo(f"figure: {result.figure}")
    click.echo(result.summary, nl=False)


@cli.command("calibrate")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write the overrides YAML (default: reports/calibration/<run-id>.yaml; never inside the run).")
def calibrate_cmd(run_dir: Path, out: Path | None) -> None:
    """Fit CPU per request, start/readiness delays, host overhead and scrape phase from a recorded run; write --set overrides."""
    from scalelab.sim.calibrate import calibrate, calibration_path, write_calibration
    from scalelab.telemetry import load_run

    target = calibration_path(run_dir, out)  # checked before any work: never inside the run
    cal = calibrate(load_run(run_dir))
    fmt = lambda v, unit: "unknown (no events)" if v is None else f"{v:.2f} {unit}"  # noqa: E731
    click.echo(f"work per request: {fmt(cal.work_ms, 'ms CPU')} (from {cal.seconds_used} s with load)")
    click.echo(f"start delay:      {fmt(cal.start_delay_s, 's')} (scale decision -> container running)")
    click.echo(f"readiness delay:  {fmt(cal.warmup_s, 's')} (running -> ready, {cal.replicas_timed} replicas)")
    click.echo(f"host overhead:    {fmt(cal.host_overhead_cores, 'cores')} (budget the saturated replicas did not get)")
    if cal.scrape_phase_s is not None:
        click.echo(f"scrape phase:     {cal.scrape_phase_s:.0f} s (metrics-server, best agreement of the replica counts)")
    path = write_calibration(cal, target)
    click.echo(f"wrote {path}; apply with: scalelab sim SCENARIO " + " ".join(f"--set {o}" for o in cal.overrides()))


@cli.command("compare")
@click.argument("real_run", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("sim_run", type=click.Path(exists=True, file_okay=False, path_type=Path))
def compare_cmd(real_run: Path, sim_run: Path) -> None:
    """How close a simulated run came to a real one: a table of replicas, reactions, latency, errors, cost, spread."""
    from scalelab.analysis import compare_table, render_compare
    from scalelab.telemetry import load_run

    real, sim = load_run(real_run), load_run(sim_run)
    click.echo(render_compare(compare_table(real, sim), title=f"{real.label} (real) vs {sim.label}"), nl=False)


# --- image commands (image) ---------------------------------------------------------------------


@cli.command("image")
@click.option(
    "--offline/--online",
    default=None,
    help="Offline: Debian bases via debootstrap + a host wheelhouse (no registry). "
    "Online: official python/nginx images and PyPI. Default: $SCALELAB_OFFLINE, else auto-detect.",
)
@click.option("--no-cache", is_flag=True, help="Rebuild the agent and lb images without Docker's layer cache; refresh the wheelhouse.")
def image_cmd(offline: bool | None, no_cache: bool) -> None:
    """Build the ai-agent and load-balancer images (and the offline base, if missing)."""
    from rich.console import Console
    from rich.table import Table

    from scalelab import images

    console = Console(stderr=True)
    cfg = images.default_config(offline, no_cache=no_cache)
    console.print(f"[bold]scalelab image[/]: {'offline (no registry)' if cfg.offline else 'online'}; cache {cfg.cache}")
    with console.status("building…") as status:

        def say(msg: str) -> None:
            console.print(f"• {msg}")
            status.update(msg)

        built = images.build_all(cfg, say)
    table = Table("image", "size", "time", "")
    for b in built:
        table.add_row(b.tag, f"{b.size_mb:.0f} MB", f"{b.seconds:.0f} s", b.action)
    Console().print(table)


# --- compose / run commands (up, scale, down, run) ---------------------------------------------

PLATFORM_ARG = click.argument("platform", type=click.Choice(platform_names()))


def _options(kubeconfig: str | None = None, context: str | None = None, project: str | None = None) -> Any:
    from scalelab.platforms import PlatformOptions

    return PlatformOptions(kubeconfig=kubeconfig, context=context, project=project)


@cli.command("up")
@PLATFORM_ARG
@click.option("--replicas", type=click.IntRange(1, 200), default=None, help="Replicas to start (default: the scenario arm's).")
@click.option("--scenario", default="classroom-spike", show_default=True, help="Scenario that sizes CPU, memory and work per request.")
@CPU_BUDGET
@KUBECONFIG_OPT
@CONTEXT_OPT
def up_cmd(platform: str, replicas: int | None, scenario: str, cpu_budget: float | None, kubeconfig: str | None, context: str | None) -> None:
    """Start the ai-agent (behind nginx on compose) by hand and wait until every replica is ready."""
    from scalelab import operate

    res = operate.up(platform, scenario=scenario, replicas=replicas, cpu_budget=cpu_budget, say=click.echo, options=_options(kubeconfig, context))
    click.echo(f"{res.project}: {res.replicas} replicas ready; try: curl -s -X POST {res.base_url}/chat -d '{{\"message\": \"hi\"}}'")


@cli.command("scale")
@PLATFORM_ARG
@click.argument("replicas", type=click.IntRange(0, 200))
@click.option("--project", default=None, help="Which running scalelab project or namespace (default: the only one).")
@KUBECONFIG_OPT
@CONTEXT_OPT
def scale_cmd(platform: str, replicas: int, project: str | None, kubeconfig: str | None, context: str | None) -> None:
    """Scale the running service by hand (during `scalelab run` it is recorded as a live scale event)."""
    from scalelab import operate

    res = operate.scale(platform, replicas, say=click.echo, options=_options(kubeconfig, context, project))
    click.echo(f"{res.project}: {res.replicas} replicas ready")


@cli.group("autoscale")
def autoscale_group() -> None:
    """Switch the kit's own scaler (scaler: threshold) off and on during a compose run."""


def _autoscale(action: str, project: str | None) -> None:
    from scalelab.platforms.compose import ComposePlatform

    platform = ComposePlatform.attach(project)
    platform.autoscale(action)
    click.echo(f"{platform.settings.project}: autoscale {action} requested; the run records it within a second (events.csv, kind autoscale)")


@autoscale_group.command("pause")
@click.option("--project", default=None, help="Which running scalelab compose project (default: the only one).")
def autoscale_pause_cmd(project: str | None) -> None:
    """Pause the running scaler until `scalelab autoscale resume` (scale by hand meanwhile)."""
    _autoscale("pause", project)


@autoscale_group.command("resume")
@click.option("--project", default=None, help="Which running scalelab compose project (default: the only one).")
def autoscale_resume_cmd(project: str | None) -> None:
    """Resume the running scaler."""
    _autoscale("resume", project)


@cli.command("down")
@PLATFORM_ARG
@KUBECONFIG_OPT
@CONTEXT_OPT
@click.option("--project", default=None, help="Remove only this project or namespace (default: everything the kit started there).")
def down_cmd(platform: str, kubeconfig: str | None, context: str | None, project: str | None) -> None:
    """Remove everything the kit started on PLATFORM (a no-op when nothing runs)."""
    from scalelab import operate

    removed = operate.down(platform, options=_options(kubeconfig, context, project))
    click.echo(f"removed: {', '.join(removed)}" if removed else "nothing to remove")


@cli.command("load")
@PLATFORM_ARG
@click.option("--seconds", type=click.FloatRange(5, 3600), default=60, show_default=True, help="How long to send load.")
@click.option("--rps", type=click.FloatRange(0.1, 500), default=None, help="Requests/s (default: the scenario's baseline, sized to this host).")
@click.option("--scenario", default="classroom-spike", show_default=True, help="Scenario that sizes the baseline.")
@CPU_BUDGET
@RUNS_DIR
@KUBECONFIG_OPT
@CONTEXT_OPT
def load_cmd(platform: str, seconds: float, rps: float | None, scenario: str, cpu_budget: float | None, runs_dir: Path,
             kubeconfig: str | None, context: str | None) -> None:
    """Send steady load to the service started with `scalelab up` and record it (the service keeps running)."""
    from scalelab import operate

    run_dir = operate.load(platform, seconds=seconds, rps=rps, scenario=scenario, cpu_budget=cpu_budget, runs_dir=runs_dir,
                           options=_options(kubeconfig, context))
    click.echo(f"run directory: {run_dir}")


@cli.command("run")
@click.argument("scenario")
@click.option("--arm", default=None, help="The scenario arm to run (see `scalelab scenarios SCENARIO`).")
@CPU_BUDGET
@click.option("--keep", is_flag=True, help="Leave the replicas running after the run (remove with `scalelab down PLATFORM`).")
@RUNS_DIR
@KUBECONFIG_OPT
@CONTEXT_OPT
def run_cmd(scenario: str, arm: str | None, cpu_budget: float | None, keep: bool, runs_dir: Path, kubeconfig: str | None, context: str | None) -> None:
    """Run one arm of SCENARIO for real (Locust load, one sample a second) into runs/<run-id>/."""
    from scalelab import runner
    from scalelab.scenario import load_scenario

    sc = load_scenario(scenario, cpu_budget=cpu_budget)
    run_dir = runner.run_arm(sc, arm, runner.RunOptions(runs_dir=runs_dir, keep=keep, platform_options=_options(kubeconfig, context)))
    click.echo(f"run directory: {run_dir}")


# --- kubernetes commands (cluster) -------------------------------------------------------------



@cli.group("cluster")
def cluster_grp() -> None:
    """The lab's kind cluster: 1 control plane + 2 workers, metrics-server, the agent image loaded."""


@cluster_grp.command("up")
@click.option("--image", "node_image", default=None, help="kind node image (default: the pinned Kubernetes 1.34 image).")
@click.option("--timeout", "timeout_s", type=float, default=300.0, show_default=True, help="Seconds each step may take.")
def cluster_up_cmd(node_image: str | None, timeout_s: float) -> None:
    """Create (or reuse) the kind cluster, load the agent image and install metrics-server."""
    from scalelab.platforms import kind

    context = kind.cluster_up(image=node_image, timeout_s=timeout_s, echo=lambda m: click.echo(f"• {m}", err=True))
    click.echo(f"kubectl context: {context}   (next: scalelab up kubernetes, or make lab03-deploy)")


@cluster_grp.command("down")
def cluster_down_cmd() -> None:
    """Delete the kind cluster (nothing to do when it does not exist)."""
    from scalelab.platforms import kind

    kind.cluster_down(echo=lambda m: click.echo(f"• {m}", err=True))


# --- report commands (report) ------------------------------------------------------------------


@cli.command("report")
@click.argument("runs", nargs=-1, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("reports/latest"), show_default=True,
              help="Where the charts, summary.csv and report.html go.")
@RUNS_DIR
@click.option("--slides", is_flag=True, help="Also write one 16:9 projector slide per story (replicas, p95, cost) into OUT/slides/.")
def report_cmd(runs: tuple[Path, ...], out_dir: Path, runs_dir: Path, slides: bool) -> None:
    """Compare runs: one chart per quantity, a self-contained report.html and the summary table.

    RUNS are run directories, or folders of runs (the newest completed run of each arm in it, e.g.
    tests/fixtures/runs); none: the newest completed run of each arm under --runs-dir.
    """
    from scalelab import report
    from scalelab.telemetry import load_run

    dirs = report.expand_run_dirs(runs) or report.latest_runs(runs_dir)
    result = report.build_report([load_run(d) for d in dirs], out_dir)
    for d in dirs:
        click.echo(f"run: {d}")
    click.echo(result.text, nl=False)
    click.echo(f"charts: {', '.join(p.name for p in result.figures.values())} in {result.out_dir}/")
    click.echo(f"report: {result.html}  (one file, images inside: open it in any browser)")
    if slides:
        from scalelab.slides import write_slides

        for path in write_slides(result.runs, out_dir / "slides"):
            click.echo(f"slide: {path}")


@cli.command("explain")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
def explain_cmd(run_dir: Path) -> None:
    """The HPA's decisions of a run worked out by hand: n, u, ceil(n x u / t), policies, bounds, condition."""
    from scalelab.hpa_math import render_decisions
    from scalelab.telemetry import load_run

    click.echo(render_decisions(load_run(run_dir)), nl=False)


@cli.command("watch")
@click.argument("runs", nargs=-1, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--port", type=click.IntRange(1024, 65535), default=8765, show_default=True, help="Port on 127.0.0.1.")
@click.option("--replay", is_flag=True, help="Play recorded runs from their start on one clock (two runs side by side, in sync).")
@click.option("--speed", type=click.FloatRange(0.1, 100), default=1.0, show_default=True, help="Replay speed (x real time).")
@RUNS_DIR
def watch_cmd(runs: tuple[Path, ...], port: int, replay: bool, speed: float, runs_dir: Path) -> None:
    """Live charts of runs in a browser on 127.0.0.1, second by second (read-only).

    RUNS are run directories (being recorded, or recorded: add --replay); none: the newest run
    under --runs-dir.
    """
    from scalelab import live
    from scalelab.telemetry import list_runs

    dirs = list(runs) or list_runs(runs_dir)[-1:]
    live.serve(dirs, port=port, replay=replay, speed=speed, say=click.echo)


@cli.command("whatif")
@click.argument("scenario", default="classroom-spike")
@click.option("--arm", default="kubernetes-hpa", show_default=True, help="The arm whose settings vary.")
@click.option("--vary", "vary", multiple=True, metavar="KEY=V1,V2,...", required=True,
              help="Values to try: a field of the arm's scaler (target_cpu_pct, max_replicas, "
              "behavior.scale_down.stabilization_window_s) or a scenario field (load.factor). Repeat for a grid.")
@click.option("--compare-with", multiple=True, metavar="ARM", help="Also simulate this arm as written (e.g. compose-manual).")
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=None, help="Random seed (default: the scenario's).")
@click.option("--out", "out_file", type=click.Path(dir_okay=False, path_type=Path), default=Path("reports/whatif.png"), show_default=True,
              help="Where the cost-against-latency chart goes.")
def whatif_cmd(scenario: str, arm: str, vary: tuple[str, ...], compare_with: tuple[str, ...], seed: int | None, out_file: Path) -> None:
    """What if: simulate an arm for each value (or grid) of settings; cost against the latency objective."""
    from scalelab import whatif

    table = whatif.sweep(scenario, arm, whatif.parse_vary(vary), seed=seed, compare_with=compare_with)
    click.echo(whatif.render_sweep(table, title=f"what if: {scenario}, {arm} (simulated)"), nl=False)
    click.echo(f"chart: {whatif.sweep_figure(table, out_file)}")


def _fail(message: str, fix: str = "") -> None:
    if "-v" in sys.argv or "--verbose" in sys.argv:
        import traceback

        traceback.print_exc()
    click.secho(f"ERROR: {message}" + (f"\nfix: {fix}" if fix else ""), fg="red", err=True)
    sys.exit(1)


def _sigterm_as_interrupt() -> None:
    """SIGTERM ends any command like Ctrl-C: runs and simulations are marked ``interrupted``, not left ``running``."""
    import signal

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    # Ctrl-C works even when started from a shell that ignores SIGINT (a background job, CI)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def main() -> None:
    """The error boundary: every failure ends as one ``ERROR:`` message with the fix, never a traceback (unless -v)."""
    _sigterm_as_interrupt()
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except ScalelabError as exc:
        _fail(exc.render())
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except UnicodeError as exc:
        _fail(f"a file is not UTF-8 text: {exc}", "save it as UTF-8")
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        _fail(f"{where}{exc.strerror or exc}", "check the path, that its folder exists and that you may write there")
    except RecursionError:
        _fail("an input is nested too deeply", "check the file you passed")
    except (ValueError, TypeError, KeyError) as exc:
        _fail(f"unexpected input: {type(exc).__name__}: {exc}", "check the files and options you passed; rerun with -v for the details")


from scalelab import cli_help  # noqa: E402  (one line each in `scalelab --help`, set once every command exists)

cli_help.apply(cli)
