"""`scalelab strategies`: the load-balancing strategy table of recorded runs (lab 07)."""

from __future__ import annotations

from pathlib import Path

import click

from scalelab.cli import RUNS_DIR, cli


@cli.command("strategies")
@click.argument("run_dirs", nargs=-1, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--scenario", default="unequal-replicas", show_default=True, help="Without RUN_DIRS: the newest run of each of this scenario's arms.")
@RUNS_DIR
def strategies_cmd(run_dirs: tuple[Path, ...], scenario: str, runs_dir: Path) -> None:
    """p95, errors and the per-replica spread of each front-door strategy (docs/load-balancing.md)."""
    from scalelab.errors import ScalelabError
    from scalelab.lb.table import latest_per_arm, render_strategy_table, strategy_rows
    from scalelab.telemetry import load_run

    runs = [load_run(d) for d in run_dirs] if run_dirs else latest_per_arm(runs_dir, scenario)
    if not runs:
        raise ScalelabError(f"no completed real run of scenario '{scenario}' under {runs_dir}",
                            fix="record them (`make lab07-runs`; docs/load-balancing.md), or pass --runs-dir tests/fixtures/runs/lb to read the committed ones")
    click.echo(render_strategy_table(strategy_rows(runs), title=f"front-door strategies: {runs[0].manifest.get('scenario')}"))
