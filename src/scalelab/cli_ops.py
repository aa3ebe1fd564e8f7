"""`scalelab` commands that start, scale and remove things: doctor, clean, image, up, scale, down,
load, run, cluster. Registered on `scalelab.cli.cli`."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from scalelab.cli import CONTEXT_OPT, CPU_BUDGET, KUBECONFIG_OPT, PLATFORM_ARG, RUNS_DIR, _options, cli
from scalelab.doctor import paths as doctor_paths


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
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE", help="Override a scenario field for this run, e.g. faults.0.kind=crash.")
def run_cmd(scenario: str, arm: str | None, cpu_budget: float | None, keep: bool, runs_dir: Path, kubeconfig: str | None, context: str | None,
            settings: tuple[str, ...]) -> None:
    """Run one arm of SCENARIO for real (Locust load, one sample a second) into runs/<run-id>/."""
    from scalelab import runner
    from scalelab.scenario import apply_overrides, load_scenario

    sc = apply_overrides(load_scenario(scenario, sized=False), settings).sized(cpu_budget)
    run_dir = runner.run_arm(sc, arm, runner.RunOptions(runs_dir=runs_dir, keep=keep, platform_options=_options(kubeconfig, context)))
    click.echo(f"run directory: {run_dir}")


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

