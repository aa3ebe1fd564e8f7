"""The operator's verbs outside a recorded run: ``up``, ``scale``, ``load`` and ``down`` by hand.

Labs 01-03 use them (`make lab01-up`, `make scale N=8`, `make lab-down`); ``scale`` typed during
a `scalelab run` is recorded by that run as a ``live`` scale event. ``down`` removes everything
the kit started on that platform and is a no-op when nothing runs. Every verb works on any
registered platform through its `PlatformKind` (no per-platform branches here).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from scalelab.errors import PlatformError, ScalelabError
from scalelab.platforms import PlatformOptions, kind_for
from scalelab.platforms.base import Platform, Say
from scalelab.scenario import Scenario, apply_overrides, load_scenario

__all__ = ["UpResult", "up", "scale", "down", "load", "LAB_RUN_ID"]

#: The run id (hence compose project ``scalelab-lab``) of an environment started by hand.
LAB_RUN_ID = "lab"


@dataclass(frozen=True)
class UpResult:
    platform: str
    replicas: int
    base_url: str
    project: str


def _arm_for(scenario: Scenario, platform: str) -> str:
    for name, arm in scenario.arms.items():
        if arm.platform == platform:
            return name
    raise ScalelabError(f"scenario '{scenario.name}' has no {platform} arm", fix="pick a scenario with one (`scalelab scenarios`)")


def _project(plat: Platform) -> str:
    info = plat.describe()
    return str(info.get("compose_project") or info.get("namespace") or info.get("swarm_stack") or plat.name)


def _attached(platform: str, options: PlatformOptions) -> Platform | None:
    kind = kind_for(platform)
    if not kind.running(options):
        return None
    try:
        return kind.attach(options)
    except PlatformError:
        return None


def up(platform: str, *, scenario: str = "classroom-spike", replicas: int | None = None, cpu_budget: float | None = None,
       timeout_s: float = 180.0, say: Say = print, options: PlatformOptions | None = None) -> UpResult:
    """Start the service sized by ``scenario`` with ``replicas`` (default: the arm's) and wait until ready.

    When the kit's service already runs there, it is scaled to ``replicas`` instead.
    """
    options = options or PlatformOptions()
    sc = load_scenario(scenario, cpu_budget=cpu_budget)
    arm_name = _arm_for(sc, platform)
    n = replicas if replicas is not None else sc.arms[arm_name].replicas
    running = _attached(platform, options)
    if running is not None:
        say(f"{_project(running)} is already running: scaling it to {n}")
        running.scale(n)
        running.wait_ready(n, timeout_s=timeout_s)
        return UpResult(platform, n, running.base_url, _project(running))
    kind = kind_for(platform)
    from scalelab.telemetry.store import new_run_id

    run_id = LAB_RUN_ID if kind.spec.name == "compose" else new_run_id(sc.name, arm_name)
    plat = kind.create(sc, arm_name, run_id=run_id, options=options)
    plat.preflight()
    say(f"starting {platform}: {n} x ai-agent ({sc.workload.cpu_limit:g} CPU, {sc.workload.memory_mb} MiB each)")
    plat.up(n)
    try:
        plat.wait_ready(n, timeout_s=timeout_s)
        plat.check_limits()
    except BaseException:
        say("not ready: removing what was started")
        plat.down()
        raise
    return UpResult(platform, n, plat.base_url, _project(plat))


def scale(platform: str, replicas: int, *, timeout_s: float = 180.0, say: Say = print, options: PlatformOptions | None = None) -> UpResult:
    """Scale the running service to ``replicas`` and wait until they are ready."""
    plat = kind_for(platform).attach(options or PlatformOptions())
    say(f"scaling {_project(plat)} to {replicas} replicas")
    plat.scale(replicas)
    plat.wait_ready(replicas, timeout_s=timeout_s)
    return UpResult(platform, replicas, plat.base_url, _project(plat))


def down(platform: str, *, say: Say = print, options: PlatformOptions | None = None) -> list[str]:
    """Remove everything the kit started on ``platform`` (or only ``options.project``); returns what was removed."""
    return kind_for(platform).down_all(options or PlatformOptions(), say)


def load(platform: str, *, seconds: float = 60.0, rps: float | None = None, scenario: str = "classroom-spike",
         cpu_budget: float | None = None, runs_dir: str | Path = "runs", options: PlatformOptions | None = None) -> Path:
    """Steady open-loop load on the service started with `up` (recorded as a run); returns the run directory.

    ``rps`` defaults to the scenario's baseline (sized to this host). The service keeps running.
    """
    from scalelab import runner
    from scalelab.telemetry.store import new_run_id

    plat = kind_for(platform).attach(options or PlatformOptions())
    base = load_scenario(scenario, sized=False)
    arm_name = _arm_for(base, platform)
    current = plat.current_replicas()
    sets = ["load.profile=steady", "load.mode=open", f"duration_s={seconds}", f"arms.{arm_name}.replicas={max(1, current)}",
            f"arms.{arm_name}.scaler={{type: fixed}}"]
    sized = apply_overrides(base, sets).sized(cpu_budget)
    if rps is not None:
        sized = sized.model_copy(update={"load": sized.load.model_copy(update={"baseline": float(rps)})})
    opts = runner.RunOptions(runs_dir=Path(runs_dir), attach=True)
    return runner.Runner(sized, arm_name, plat, opts, run_id=new_run_id("load", arm_name)).run()
