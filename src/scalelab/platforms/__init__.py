"""Where the replicas run. Which platforms exist is `scalelab.registry`'s business; each platform
module defines ``KIND`` (`PlatformKind`) and is imported only when chosen (no Docker or cluster
client is made at import).
"""

from __future__ import annotations

from typing import Any

from scalelab.platforms.base import Observation, Platform, PlatformKind, PlatformOptions
from scalelab.registry import platform_kind, platform_names

__all__ = ["Observation", "Platform", "PlatformKind", "PlatformOptions", "platform_for", "kind_for", "platform_names"]


def kind_for(name: str) -> PlatformKind:
    """The `PlatformKind` of a registered platform (a ScalelabError lists the names otherwise)."""
    kind: PlatformKind = platform_kind(name)
    return kind


def platform_for(name: str, scenario: Any, arm: str, *, run_id: str, options: PlatformOptions | None = None) -> Platform:
    """The platform ``name`` for one arm of a sized scenario."""
    return kind_for(name).create(scenario, arm, run_id=run_id, options=options or PlatformOptions())
