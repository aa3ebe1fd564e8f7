"""The operator's verbs outside a recorded run: ``up``, ``scale`` and ``down`` a platform by hand.

Labs 01-02 use them (`make lab01-up`, `make scale N=8`, `make lab-down`); ``scale`` typed during
a `scalelab run` is recorded by that run as a ``live`` scale event. ``down`` removes everything
the kit started on that platform and is a no-op when nothing runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from scalelab.errors import ScalelabError
from scalelab.scenario import load_scenario

__all__ = ["UpResult", "up", "scale", "down", "load", "LAB_RUN_ID"]

#: The run id (hence compose project ``scalelab-lab``) of an environment started by hand.
LAB_RUN_ID = "lab"

Say = Callable[[str], None]


@dataclass(frozen=True)
class UpResult:
    platform: str
    replicas: int
    base_url: str
    project: str


def _arm_for(scenario: object, platform: str) -> str:
    for name, arm in scenario.arms.items():  # type: ignore[attr-defined]
        if arm.platform == platform:
            return name
    raise ScalelabError(f"scenario '{scenario.name}' has no {platform} arm", fix="pick a scenario with one (`scalelab scenarios`)")  # type: ignore[attr-defined]


def up(platform: str, *, scenario: str = "classroom-spike", replicas: int | None = None, cpu_budget: float | None = None,
       timeout_s: float = 180.0, say: Say = print, kubeconfig: str | None = None, context: str | None = None) -> UpResult:
    """Start the service sized by ``scenario`` with ``replicas`` (default: the arm's) and wait until ready."""
    sc = load_scenario(scenario, cpu_budget=cpu_budget)
    arm_name = _arm_for(sc, platform)
    n = replicas if replicas is not None else sc.arms[arm_name].replicas
    if platform == "kubernetes":  # kubernetes arm: one labelled namespace, see platforms/kubernetes.py
        from scalelab.platforms.kubernetes import up_standalone

        kp = up_standalone(sc, arm_name, replicas=n, kubeconfig=kubeconfig, context=context, timeout_s=timeout_s, echo=say)
        return UpResult(platform, n, kp.base_url, kp.namespace)
    if platform != "compose":
        raise ScalelabError(f"`scalelab up {platform}` is not available yet", fix="use `scalelab run SCENARIO --arm ARM`")
    from scalelab.platforms.compose import ComposePlatform, ComposeSettings, running_projects

    settings = ComposeSettings.for_scenario(sc, LAB_RUN_ID)
    plat = ComposePlatform(settings)
    if settings.project in running_projects():
        say(f"{settings.project} is already running: scaling it to {n}")
        plat = ComposePlatform.attach(settings.project)
        plat.scale(n)
    else:
        plat.preflight()
        say(f"starting {settings.project}: {n} x ai-agent ({settings.cpus:g} CPU, {settings.memory_mb} MiB each) behind nginx")
        plat.up(n)
    plat.wait_ready(n, timeout_s=timeout_s)
    plat.check_limits()
    return UpResult(platform, n, plat.base_url, settings.project)


def scale(platform: str, replicas: int, *, project: str | None = None, timeout_s: float = 180.0, say: Say = print,
          kubeconfig: str | None = None, context: str | None = None) -> UpResult:
    """Scale the running service to ``replicas`` and wait until they are ready."""
    if platform == "kubernetes":  # patches the Deployment's scale subresource (no HPA arms: it would override)
        from scalelab.platforms.kubernetes import scale_standalone

        ns, url = scale_standalone(replicas, namespace=project, kubeconfig=kubeconfig, context=context, timeout_s=timeout_s, echo=say)
        return UpResult(platform, replicas, url, ns)
    if platform != "compose":
        raise ScalelabError(f"`scalelab scale {platform}` is not available yet")
    from scalelab.platforms.compose import ComposePlatform

    plat = ComposePlatform.attach(project)
    say(f"scaling {plat.settings.project} from {plat.desired} to {replicas} replicas")
    plat.scale(replicas)
    plat.wait_ready(replicas, timeout_s=timeout_s)
    return UpResult(platform, replicas, plat.base_url, plat.settings.project)


def down(platform: str, *, kubeconfig: str | None = None, context: str | None = None, say: Say = print, project: str | None = None) -> list[str]:
    """Remove everything the kit started on ``platform``; returns what was removed."""
    if platform == "kubernetes":  # every namespace labelled app.kubernetes.io/managed-by=scalelab
        from scalelab.platforms.kubernetes import down_target

        return down_target(kubeconfig, context, echo=say)
    if platform != "compose":
        raise ScalelabError(f"`scalelab down {platform}` is not available yet")
    from scalelab.platforms.compose import down_all

    return down_all(project)


def load(platform: str, *, seconds: float = 60.0, rps: float | None = None, scenario: str = "classroom-spike",
         cpu_budget: float | None = None, runs_dir: str = "runs") -> object:
    """Steady open-loop load on the service started with `up` (recorded as a run); returns the run directory.

    ``rps`` defaults to the scenario's baseline (sized to this host). The service keeps running.
    """
    if platform != "compose":
        raise ScalelabError(f"`scalelab load {platform}` is not available yet", fix="use `scalelab run SCENARIO --arm ARM`")
    from pathlib import Path

    from scalelab import runner
    from scalelab.platforms.compose import ComposePlatform
    from scalelab.scenario import apply_overrides

    plat = ComposePlatform.attach()
    base = load_scenario(scenario, sized=False)
    arm_name = _arm_for(base, platform)
    sets = ["load.profile=steady", "load.mode=open", f"duration_s={seconds}", f"arms.{arm_name}.replicas={max(1, plat.desired)}",
            f"arms.{arm_name}.scaler={{type: fixed}}"]
    sized = apply_overrides(base, sets).sized(cpu_budget)
    if rps is not None:
        sized = sized.model_copy(update={"load": sized.load.model_copy(update={"baseline": float(rps)})})
    opts = runner.RunOptions(runs_dir=Path(runs_dir), attach=True)
    from scalelab.telemetry.store import new_run_id

    return runner.Runner(sized, arm_name, plat, opts, run_id=new_run_id("load", arm_name)).run()
