"""`scalelab` commands that read scenarios and runs: scenarios, sim, demo, calibrate, compare, whatif,
report, explain, watch. No Docker or cluster needed. Registered on `scalelab.cli.cli`."""

from __future__ import annotations

from pathlib import Path

import click

from scalelab.cli import CPU_BUDGET, RUNS_DIR, cli, done_and_closed


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
    from scalelab.sim import prepare_scenario, simulate_runs

    sc = prepare_scenario(scenario, cpu_budget=cpu_budget, seed=seed, overrides=settings)
    runs = simulate_runs(sc, runs_dir, arms=[arm] if arm else None, seed=seed, workers=None)
    from scalelab import analysis  # pandas: imported while forked workers simulate, when there are some
    dirs = [r.path for r in runs]
    for d in dirs:
        click.echo(f"run: {d}")
    click.echo(analysis.render_summary(analysis.summary_table(runs), title=f"{sc.name} (simulated, seed {sc.seed})"), nl=False)
    if sc.load.profile == "day" or sc.duration_s >= 86400:
        click.echo(analysis.render_daily_cost(runs), nl=False)
    if sc.faults or sc.rollout is not None:  # measured as a recorded run is (docs/faults.md, docs/rollouts.md)
        from scalelab.faults.table import SHORT_COLUMNS, render, run_rows

        click.echo("\nFaults and rollouts (simulated; docs/fidelity.md):\n" + render([r for run in runs for r in run_rows(run)], list(SHORT_COLUMNS.values())))
    if figure:
        from scalelab.plots import comparison_figure

        click.echo(f"figure: {comparison_figure(runs, runs_dir / f'{dirs[0].name[:15]}-{sc.name}-comparison.png')}")
    done_and_closed()  # the run directories are written and closed, the workers joined


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
    """Fit CPU per request, start/readiness delays, host overhead, scrape phase and load start from a recorded run; write --set overrides."""
    from scalelab.sim.calibrate import calibrate, calibration_path, write_calibration
    from scalelab.telemetry import load_run

    target = calibration_path(run_dir, out)  # checked before any work: never inside the run
    cal = calibrate(load_run(run_dir))
    fmt = lambda v, unit: "unknown (no events)" if v is None else f"{v:.2f} {unit}"  # noqa: E731
    click.echo(f"work per request: {fmt(cal.work_ms, 'ms CPU')} (of a replica's quota while requests wait on it)")
    if cal.cpu_per_request_ms is not None:
        click.echo(f"CPU per request:  {fmt(cal.cpu_per_request_ms, 'ms')} (what the CPU counters see while a replica keeps up)")
    if cal.idle_cores is not None:
        click.echo(f"idle replica:     {cal.idle_cores:.4f} cores (no request in flight)")
    click.echo(f"start delay:      {fmt(cal.start_delay_s, 's')} (scale decision -> container running)")
    click.echo(f"readiness delay:  {fmt(cal.warmup_s, 's')} (running -> ready, {cal.replicas_timed} replicas)")
    click.echo(f"host overhead:    {fmt(cal.host_overhead_cores, 'cores')} (budget the replicas did not get while the host held them back)")
    if cal.scrape_phase_s is not None:
        click.echo(f"scrape phase:     {cal.scrape_phase_s:.0f} s (metrics-server: the simulated HPA reads the utilisation the real one reported)")
    if cal.replica_speed_cv is not None:
        click.echo(f"replica speeds:   {cal.replica_speed_cv:.3f} CV (how much the replicas' rates at their limit differ, beyond counting noise)")
    if cal.load_start_s is not None:
        click.echo(f"load start:       {fmt(cal.load_start_s, 's')} after t0 (the simulator replays the load generator's arrivals from then)")
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

