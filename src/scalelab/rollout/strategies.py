"""Which rollout strategies each platform implements, and which arm fields each one reads.

No imports: `scalelab.scenario` validates an arm's ``rollout:`` section against these tables.
The first strategy of a platform is its default (what its own tooling does when nobody asks).
"""

from __future__ import annotations

__all__ = ["STRATEGIES", "FIELDS", "default_strategy"]

#: platform -> strategies, default first (docs/rollouts.md)
STRATEGIES: dict[str, tuple[str, ...]] = {
    # recreate: `docker compose up -d` with the new image (stop, remove, create, start);
    # double-then-retire: scale to 2x with the new image, wait until healthy, then stop the old ones
    "compose": ("recreate", "double-then-retire"),
    # rolling: the Deployment's RollingUpdate (maxSurge, maxUnavailable); recreate: strategy Recreate
    "kubernetes": ("rolling", "recreate"),
    # update: `docker service update --image`, as the arm's swarm.update_config says (order stop-first | start-first)
    "swarm": ("update",),
}

#: arm ``rollout:`` field -> the platforms that read it (``strategy`` applies everywhere)
FIELDS: dict[str, tuple[str, ...]] = {
    "max_surge": ("kubernetes",),
    "max_unavailable": ("kubernetes",),
    "readiness": ("kubernetes",),
    "pre_stop_s": ("kubernetes",),
    "grace_s": ("kubernetes",),
    "min_ready_s": ("kubernetes",),
    "health_timeout_s": ("compose",),
    # the agent's SIGTERM drain (AGENT_DRAIN in its environment)
    "drain": ("compose", "kubernetes"),
}


def default_strategy(platform: str) -> str | None:
    found = STRATEGIES.get(platform)
    return found[0] if found else None
