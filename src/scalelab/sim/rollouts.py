"""Rollouts in the model: each platform's strategy as the sequence of replica starts and stops it makes.

`roll(platform, how, t_r, replicas, to)` changes the lives of a `scalelab.sim.lifecycle.Platform`
and records the kit's ``rollout_start`` / ``rollout`` / ``rollout_end`` events, as
`scalelab.rollout.act` records them on a real platform (docs/rollouts.md):

- compose ``recreate``: `docker compose up -d` stops every old container (SIGTERM), removes it,
  creates its replacement; nothing is listening in between;
- compose ``double-then-retire``: new containers beside the old ones, the old ones stopped once
  the new ones are healthy;
- Swarm ``update``: ``parallelism`` tasks at a time, ``stop-first`` (stop the old task, start
  the new one) or ``start-first`` (start the new one, stop the old once it is running), ``delay``
  between batches;
- Kubernetes ``rolling``: the Deployment controller's loop (surge new pods up to ``max_surge``
  above the replicas, delete old ones while at least ``replicas - max_unavailable`` are
  available; a pod is available once ready for ``min_ready_s``); ``recreate``: every old pod
  gone before any new one is created. A deleted pod leaves the endpoints after the sync delay
  while its preStop sleep runs, then SIGTERM.
"""

from __future__ import annotations

import math
from typing import Any

from scalelab.sim.lifecycle import INF, DockerPlatform, KubernetesPlatform, Life, Platform, SwarmPlatform

__all__ = ["roll", "resolve_count"]


def resolve_count(value: int | str | None, replicas: int, *, round_up: bool) -> int:
    """A Deployment's maxSurge / maxUnavailable: a number, or a percentage of the replicas (surge
    rounds up, unavailable down; unset: 25%)."""
    if value is None:
        value = "25%"
    if isinstance(value, str):
        share = float(value.strip().rstrip("%")) / 100.0 * replicas
        return math.ceil(share - 1e-9) if round_up else math.floor(share + 1e-9)
    return int(value)


def roll(platform: Platform, how: Any, t_r: float, to: str, image: str) -> None:
    """Roll every live replica of ``platform`` to version ``to`` at ``t_r`` as ``how`` (an effective
    `ArmRollout`) says; the kit's events go to ``platform.kit_events``."""
    old = [x for x in platform.alive(t_r) if x.version != to]
    n = len(old)
    strategy = how.strategy
    platform.kit_events.append((t_r, "rollout_start", f"strategy={strategy} to={to} image={image} replicas={n}"))
    if isinstance(platform, KubernetesPlatform):
        end = _kubernetes(platform, how, t_r, old, to)
    elif isinstance(platform, SwarmPlatform):
        end = _swarm(platform, how, t_r, old, to)
    elif isinstance(platform, DockerPlatform):
        end = _compose(platform, how, t_r, old, to)
    else:  # pragma: no cover - every platform model is one of the above
        raise TypeError(type(platform).__name__)
    platform.kit_events.append((end, "rollout_end", f"ok wall_s={end - t_r:.2f} replicas={n} on {image} (simulated)"))


def _compose(p: DockerPlatform, how: Any, t_r: float, old: list[Life], to: str) -> float:
    tm = p.timings
    drain = bool(getattr(how, "drain", True))
    t = t_r + tm.compose_cli_s
    if how.strategy == "double-then-retire":
        p.kit_events.append((t_r, "rollout", f"scale to {2 * len(old)} with --no-recreate: {len(old)} new replicas beside the old ones"))
        new = [p.spawn(t, to) for _ in old]
        healthy = max(x.ready for x in new) + tm.kit_notice_s
        p.kit_events.append((healthy, "rollout", f"{len(new)} new replicas healthy; stopping the {len(old)} old ones (SIGTERM, drain)"))
        gone = max(p.stop(x, healthy, drain=drain) for x in old)
        return gone + tm.kit_notice_s
    p.kit_events.append((t_r, "rollout", f"docker compose up -d: compose recreates the {len(old)} replicas"))
    new = [p.spawn(p.stop(x, t, drain=drain) + tm.recreate_s, to) for x in old]
    return max(x.ready for x in new) + tm.kit_notice_s


def _swarm(p: SwarmPlatform, how: Any, t_r: float, old: list[Life], to: str) -> float:
    """`docker service update`: ``parallelism`` tasks at a time; stop-first stops the old task and
    creates its replacement after the restart policy's delay (as recorded), start-first creates the
    new task at once and stops the old one when the new one is healthy; the next batch after
    ``delay``; the update completes ``monitor`` after the last new task is healthy."""
    tm = p.timings
    update = p.update_config
    parallelism = int(getattr(update, "parallelism", 1) or len(old) or 1)
    delay = float(getattr(update, "delay_s", 0.0))
    monitor = tm.swarm_monitor_s if tm.swarm_monitor_s is not None else float(getattr(update, "monitor_s", 5.0))
    start_first = getattr(update, "order", "stop-first") == "start-first"
    p.kit_events.append((t_r, "rollout", f"docker service update --image ({'start-first' if start_first else 'stop-first'}, parallelism {parallelism})"))
    t = t_r + tm.kit_notice_s
    up = t
    for i in range(0, len(old), parallelism):
        batch = old[i : i + parallelism]
        if start_first:
            new = [p.spawn(t + tm.swarm_dispatch_s, to) for _ in batch]
            up = max(x.ready for x in new)
            for x in batch:
                p.stop(x, up, grace_s=tm.swarm_stop_grace_s)
                x.routed_until = min(x.routed_until, up)  # a task shutting down leaves DNS
        else:
            for x in batch:
                p.stop(x, t, grace_s=tm.swarm_stop_grace_s)
                x.routed_until = min(x.routed_until, t)
            new = [p.replace(x, to) for x in batch]
            up = max(x.ready for x in new)
        t = up + delay
    return up + monitor + tm.kit_notice_s


def _kubernetes(p: KubernetesPlatform, how: Any, t_r: float, old: list[Life], to: str) -> float:
    tm = p.timings
    n = len(old)
    readiness = bool(getattr(how, "readiness", True))
    pre_stop = float(getattr(how, "pre_stop_s", 0) or 0)
    grace = float(how.grace_s) if getattr(how, "grace_s", None) else tm.termination_grace_s
    min_ready = float(getattr(how, "min_ready_s", 0) or 0)
    drain = bool(getattr(how, "drain", True))
    t = t_r + tm.controller_s
    p.kit_events.append((t_r, "rollout", f"deployment image set to v{to.lstrip('v')} ({how.strategy})"))
    new: list[Life] = []
    if how.strategy == "recreate":
        gone = max((p.delete(x, t, pre_stop_s=pre_stop, grace_s=grace, drain=drain) for x in old), default=t)
        new = [p.spawn(gone + tm.controller_s, to, readiness=readiness) for _ in range(n)]
        return max(x.ready for x in new) + min_ready + tm.kit_notice_s
    surge = resolve_count(how.max_surge, n, round_up=True)
    unavailable = resolve_count(how.max_unavailable, n, round_up=False)
    if surge == 0 and unavailable == 0:  # the scenario refuses this; keep the loop finite anyway
        unavailable = 1
    remaining = list(old)
    for _ in range(10 * n + 10):
        def available(x: Life, at: float) -> bool:
            return x.counted_ready(at) and at >= x.ready + (min_ready if x in new else 0.0)

        while len(new) < n and len(remaining) + len(new) < n + surge:
            new.append(p.spawn(t, to, readiness=readiness))
        can = sum(1 for x in remaining if available(x, t)) + sum(1 for x in new if available(x, t)) - (n - unavailable)
        remaining.sort(key=lambda x: available(x, t))  # unavailable old pods go first
        while remaining and (not available(remaining[0], t) or can > 0):
            victim = remaining.pop(0)
            if available(victim, t):
                can -= 1
            p.delete(victim, t, pre_stop_s=pre_stop, grace_s=grace, drain=drain)
        while len(new) < n and len(remaining) + len(new) < n + surge:
            new.append(p.spawn(t, to, readiness=readiness))
        if not remaining and len(new) == n and all(available(x, t) for x in new):
            return t + tm.kit_notice_s
        upcoming = [x.ready + min_ready for x in new if x.ready + min_ready > t]
        if not upcoming:  # nothing will change: the rollout would stall (a real one would time out)
            return t + tm.kit_notice_s
        t = min(upcoming) + tm.controller_s
    return t if t < INF else t_r
