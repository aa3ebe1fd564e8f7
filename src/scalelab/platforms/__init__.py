"""Where the replicas run: docker compose on one host, or Kubernetes (kind or any kubeconfig).

`platform_for` is the one dispatch the CLI and the runner use; each platform module is imported
only when chosen (no Docker or cluster client is made at import).
"""

from __future__ import annotations

from typing import Any

from scalelab.errors import ScalelabError
from scalelab.platforms.base import Observation, Platform

__all__ = ["Observation", "Platform", "PLATFORM_NAMES", "platform_for"]

PLATFORM_NAMES = ("compose", "kubernetes")


def platform_for(name: str, scenario: Any, arm: str | None, *, run_id: str, **options: Any) -> Platform:
    """The platform ``name`` for one arm of a sized scenario; ``options`` are platform-specific.

    compose: ``port`` (127.0.0.1 port of nginx). kubernetes: see `KubernetesPlatform`.
    """
    if name == "compose":
        from scalelab.platforms.compose import ComposePlatform, ComposeSettings

        return ComposePlatform(ComposeSettings.for_scenario(scenario, run_id, port=options.get("port")))
    if name == "kubernetes":
        from scalelab.platforms.kubernetes import KubernetesPlatform

        return KubernetesPlatform(scenario, arm, run_id=run_id, **{k: v for k, v in options.items() if k != "port"})
    raise ScalelabError(f"unknown platform '{name}'; allowed: {', '.join(PLATFORM_NAMES)}")
