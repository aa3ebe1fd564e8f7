"""`scalelab clean`: remove everything the kit started, whatever state it was left in.

Each step runs even when an earlier one fails (Docker stopped, no cluster, wrong context), and
says what it removed or why it had nothing to do. Recorded runs under runs/ are kept.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from scalelab.errors import ScalelabError
from scalelab.platforms import PlatformOptions, kind_for
from scalelab.registry import platform_names

__all__ = ["Step", "clean"]

Say = Callable[[str], None]


@dataclass(frozen=True)
class Step:
    name: str
    removed: tuple[str, ...] = ()
    skipped: str = ""  # why nothing was done (not an error)


def _platform_step(name: str, options: PlatformOptions, say: Say) -> Step:
    """Remove what the kit started on one platform; a platform that cannot be reached has nothing of ours."""
    try:
        return Step(name, tuple(kind_for(name).down_all(options, say)))
    except ScalelabError as exc:  # no engine, no cluster, no kubeconfig, wrong context
        return Step(name, skipped=exc.message.splitlines()[0])


def _density_step(say: Say) -> Step:
    """Density ramps (lab 12) that no longer run: their containers and networks."""
    from scalelab.density.containers import clean_stale

    try:
        return clean_stale(say)
    except ScalelabError as exc:
        return Step("density", skipped=exc.message.splitlines()[0])


def _hosts_step(say: Say) -> Step:
    """The kit's Docker-in-Docker hosts (a scenario's hosts:), with their volumes and network: whatever run left them."""
    from scalelab import engine
    from scalelab.hosts.dind import remove_hosts

    if not engine.reachable(timeout_s=20):
        return Step("hosts", skipped="Docker engine not reachable")
    try:
        return Step("hosts", tuple(remove_hosts(None)))
    except ScalelabError as exc:
        return Step("hosts", skipped=exc.message.splitlines()[0])


def _kind_step(say: Say) -> Step:
    from scalelab.platforms import kind

    try:
        deleted = kind.cluster_down(echo=say)
    except ScalelabError as exc:
        return Step("kind cluster", skipped=exc.message.splitlines()[0])
    return Step("kind cluster", (kind.KIND_CLUSTER,) if deleted else ())


def clean(*, cluster: bool = False, kubeconfig: str | None = None, context: str | None = None, say: Say = print) -> list[Step]:
    """Remove what the kit started on every registered platform and (with ``cluster``) the kind cluster."""
    options = PlatformOptions(kubeconfig=kubeconfig, context=context)
    steps = [_platform_step(name, options, say) for name in platform_names()]
    steps.append(_density_step(say))
    steps.append(_hosts_step(say))
    if cluster:
        steps.append(_kind_step(say))
    return steps
