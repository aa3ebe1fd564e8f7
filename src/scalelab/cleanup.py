"""`scalelab clean`: remove everything the kit started, whatever state it was left in.

Each step runs even when an earlier one fails (Docker stopped, no cluster, wrong context), and
says what it removed or why it had nothing to do. Recorded runs under runs/ are kept.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from scalelab.errors import ScalelabError

__all__ = ["Step", "clean"]

Say = Callable[[str], None]


@dataclass(frozen=True)
class Step:
    name: str
    removed: tuple[str, ...] = ()
    skipped: str = ""  # why nothing was done (not an error)


def _compose_step(say: Say) -> Step:
    from scalelab.images import docker_available

    if not docker_available(timeout_s=20):
        return Step("compose", skipped="Docker engine not reachable: no compose projects to remove")
    from scalelab import operate

    return Step("compose", tuple(operate.down("compose", say=say)))


def _kubernetes_step(kubeconfig: str | None, context: str | None, say: Say) -> Step:
    from scalelab import operate

    try:
        return Step("kubernetes", tuple(operate.down("kubernetes", kubeconfig=kubeconfig, context=context, say=say)))
    except ScalelabError as exc:  # no cluster, no kubeconfig, wrong context: nothing of ours can be there
        return Step("kubernetes", skipped=exc.message.splitlines()[0])


def _kind_step(say: Say) -> Step:
    from scalelab.platforms import kind

    try:
        deleted = kind.cluster_down(echo=say)
    except ScalelabError as exc:
        return Step("kind cluster", skipped=exc.message.splitlines()[0])
    return Step("kind cluster", (kind.KIND_CLUSTER,) if deleted else ())


def clean(*, cluster: bool = False, kubeconfig: str | None = None, context: str | None = None, say: Say = print) -> list[Step]:
    """Remove compose projects, run namespaces and (with ``cluster``) the kind cluster."""
    steps = [_compose_step(say), _kubernetes_step(kubeconfig, context, say)]
    if cluster:
        steps.append(_kind_step(say))
    return steps
