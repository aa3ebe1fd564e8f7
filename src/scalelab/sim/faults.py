"""A scenario's faults and rollout in the simulator: replica lives, each request, the kit's events.

When a scenario lists ``faults:`` or a ``rollout:``, `disrupt` runs after the fluid model
(`scalelab.sim.engine`) for an arm whose replica count only the platform changes (scaler
``fixed``): it builds the replicas' lives on the arm's platform (`scalelab.sim.lifecycle`),
applies each fault at its ``at_s`` and the rollout (`scalelab.sim.rollouts`), sends every
arrival of the load generator's own arrival process (`scalelab.load.plan.LoadPlan.arrivals`,
seeded by the scenario) through the front door (`scalelab.sim.requests`), and writes back:

- ``requests`` (the run's ``requests.csv``), the ``fault`` / ``rollout*`` events as the kit
  writes them, and ``replica_start`` / ``replica_ready`` / ``replica_stop`` as the kit's
  once-a-second poll sees them;
- the sample columns that depend on them: ready replicas (at each sample's observation time),
  requests and errors per second, p50 and p95.

So `scalelab.faults.measure` and `scalelab.rollout.measure` compute the same figures from a
simulated run as from a recorded one (benchmarks/bench_faults_fidelity.py compares them).
Node loss: compose runs on the first of the scenario's hosts, so losing it loses every replica
and the front door; Swarm and Kubernetes over several hosts are not modelled (a ``note``). With another scaler the
fault model is skipped and the run says so in a ``note`` event.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from scalelab.sim.lifecycle import Life, Platform, Timings, platform_model
from scalelab.sim.requests import serve
from scalelab.sim.rollouts import roll

__all__ = ["DEFAULT_TIMINGS", "disrupt", "has_disruptions", "build", "arrivals_of", "MAX_REQUESTS"]

DEFAULT_TIMINGS = Timings()
#: per-request simulation beyond this many requests is refused (a day of heavy load): a note instead
MAX_REQUESTS = 2_000_000
#: scalers under which the platform alone decides the replica count
_HELD = ("fixed",)


def has_disruptions(scenario: Any) -> bool:
    return bool(getattr(scenario, "faults", ())) or getattr(scenario, "rollout", None) is not None


def arrivals_of(scenario: Any, load_start_s: float) -> list[float]:
    """The load generator's arrival times for this scenario (its own seeded process, from
    ``load_start_s`` after t0); a closed loop is approximated by open arrivals at users x user_rps."""
    from scalelab.sim.engine import replayed_times

    load = scenario.load
    if load.mode != "open":
        load = load.model_copy(update={"mode": "open", "baseline": load.baseline * load.user_rps})
    return replayed_times(load, float(scenario.duration_s), int(scenario.seed), load_start_s).tolist()


def _victim(platform: Platform, fault: Any, index: int, t: float, seed: int, previous: str | None) -> Life | None:
    from scalelab.faults.inject import pick

    if getattr(fault, "target", "one") == "same":
        if previous is None:
            return None
        mine = [x for x in platform.lives if x.slot == previous and x.running(t)]  # as the kit: it must run now
        return mine[-1] if mine else None
    ready = {x.name: x for x in platform.ready_at(t) if x.running(t) and x.hung > t}
    if not ready:
        return None
    return ready[pick(list(ready), seed, index)]


def _node_loss(platform: Platform, scenario: Any, arm: Any, fault: Any, t: float) -> None:
    """A host stops with all it runs. compose runs everything (replicas and nginx) on the first of
    the scenario's hosts: losing it loses the service (nothing restarts on a stopped host);
    losing another loses nothing. Swarm and Kubernetes over several hosts: not modelled."""
    hosts = [h.name for h in getattr(scenario, "hosts", ())]
    if arm.platform != "compose":
        platform.kit_events.append((t, "note", f"node-loss of host {fault.host} is not modelled on {arm.platform} (simulated)"))
        return
    platform.kit_events.append((t, "fault", f"node-loss host={fault.host} simulated: the host stops with all it runs"))
    if hosts and fault.host == hosts[0]:
        for life in platform.alive(t):
            platform.kill(life, t)
        platform.front_door_down = min(platform.front_door_down, t)


def build(scenario: Any, arm: Any, *, timings: Timings, service_s: float) -> Platform:
    """The arm's platform with its faults and rollout applied (lives and kit events)."""
    from scalelab.rollout.act import effective
    from scalelab.versions import agent_image

    if scenario.sim.start_delay_s is not None and timings.start_delay_s is None:
        timings = timings.with_overrides(start_delay_s=float(scenario.sim.start_delay_s))
    platform = platform_model(arm.platform, timings, warmup_s=float(scenario.workload.warmup_s), service_s=service_s, seed=scenario.seed,
                              swarm=arm.swarm)
    platform.initial(arm.replicas)
    actions: list[tuple[float, int, Any]] = [(float(f.at_s), i, f) for i, f in enumerate(scenario.faults)]
    if scenario.rollout is not None:
        actions.append((float(scenario.rollout.at_s), len(actions), scenario.rollout))
    previous: str | None = None
    for t, index, what in sorted(actions, key=lambda a: (a[0], a[1])):
        if what is scenario.rollout:
            image = agent_image(what.to)
            roll(platform, effective(arm.platform, arm.rollout), t, what.to, image)
            continue
        if what.kind == "node-loss":
            _node_loss(platform, scenario, arm, what, t)
            continue
        life = _victim(platform, what, index, t, scenario.seed, previous)
        if life is None:
            why = "no ready replica" if getattr(what, "target", "one") != "same" else "the previous fault's replica does not run now"
            platform.kit_events.append((t, "note", f"fault {what.kind} not injected: {why} (simulated)"))
            continue
        previous = life.slot
        platform.kit_events.append((t, "fault", f"{what.kind} replica={life.name} simulated {arm.platform} {what.kind}"))
        platform.fault(what.kind, life, t)
    return platform


def disrupt(result: Any, scenario: Any, arm: Any, params: Any, *, timings: Timings | None = None, draw: int = 0) -> None:
    """Apply the scenario's faults and rollout to one simulated arm (`SimResult`), in place. ``draw``
    picks another draw of the front door's random choices (the arrivals stay the scenario's)."""
    from scalelab.sim.scalers import ScalerEvent

    if arm.scaler.type not in _HELD:
        result.events.append(ScalerEvent(0.0, "note", None, "sim", f"faults and rollouts are modelled for scaler {', '.join(_HELD)} only, "
                                         f"not {arm.scaler.type}: this run has none"))
        return
    timings = timings or DEFAULT_TIMINGS
    service_s = float(params.work_ms) / 1000.0 / min(float(params.cpu_limit), 1.0)
    fitted = getattr(scenario.sim, "load_start_s", None)  # `scalelab calibrate` reads it off a recorded run
    arrivals = arrivals_of(scenario, float(fitted) if fitted is not None else timings.load_start_s)
    if len(arrivals) > MAX_REQUESTS:
        result.events.append(ScalerEvent(0.0, "note", None, "sim", f"{len(arrivals)} requests: too many to simulate one by one; faults not modelled"))
        return
    platform = build(scenario, arm, timings=timings, service_s=service_s)
    keep_alive = arm.platform == "kubernetes" and scenario.load.connections == "keep-alive"
    retry = bool(getattr(arm.lb, "retry", True)) if getattr(arm, "lb", None) is not None else True  # the ladder's lb.retry
    rows = serve(platform, arrivals, timeout_s=float(params.timeout_s), keep_alive=keep_alive, keepalive_idle_s=float(params.keepalive_idle_s),
                 client_connections=scenario.load.client_connections, seed=scenario.seed, draw=draw, retry=retry)
    result.requests = rows
    n = result.n
    ticks = [k + timings.poll_offset_s for k in range(n)]
    events = [ScalerEvent(t, kind, None, "sim", detail) for t, kind, detail in platform.kit_events]
    events += [ScalerEvent(round(t, 3), kind, None, "sim", name) for t, kind, name in platform.observe(ticks) if t > 0.5]
    result.events[:] = [e for e in result.events if e.kind not in ("replica_start", "replica_ready", "replica_stop")] + events
    result.events.sort(key=lambda e: e.t_s)
    _columns(result.columns, platform, rows, ticks)


def _columns(columns: dict[str, Any], platform: Platform, rows: list[dict[str, Any]], ticks: list[float]) -> None:
    """Ready replicas at each sample's observation, and each second's requests, errors, p50, p95."""
    n = len(ticks)
    columns["replicas_ready"] = np.array([len(platform.seen_ready(t)) for t in ticks], dtype=np.int64)
    served = np.zeros(n)
    errors = np.zeros(n)
    lat: list[list[float]] = [[] for _ in range(n)]
    for r in rows:
        k = int(math.floor(r["t_s"]))
        if not 0 <= k < n:
            continue
        if r["ok"]:
            served[k] += 1
            lat[k].append(r["response_ms"])
        else:
            errors[k] += 1
    columns["rps"] = served
    columns["errors"] = errors
    columns["p50_ms"] = np.array([float(np.percentile(v, 50)) if v else math.nan for v in lat])
    columns["p95_ms"] = np.array([float(np.percentile(v, 95)) if v else math.nan for v in lat])
