"""Replica lives for the fault and rollout model: when each replica runs, answers, is routed to, stops.

The fluid model (`scalelab.sim.service`) counts replicas; a fault or a rollout is about *which*
replica a request meets at the moment it arrives, so this model keeps one `Life` per replica
incarnation (a container or pod from start to exit; a restart in place is a new life with the
same name) with the times that matter:

- ``started``: the container runs (what the kit's poll reports as ``replica_start``);
- ``listening``: the agent accepts connections (``created + start delay``, as the fluid model's
  start delay); before it, a connection is refused;
- ``ready``: the platform calls it ready (compose and Swarm: the healthcheck; Kubernetes: the
  readiness probe), at the first check at or after ``listening + warmup``;
- ``routed_from``/``routed_until``: the front door may send it requests (compose: Docker's DNS
  lists a running container, ready or not; Swarm: a healthy task; Kubernetes: the Service's
  endpoints, a sync delay after the readiness changes);
- ``closed``: it stops accepting (SIGTERM: the agent closes its socket and finishes what it
  holds); ``dead``: the process is gone (whatever it still held fails); ``hung``: it accepts
  and answers nothing (cgroup freezer, SIGSTOP).

`Timings` holds the platform constants (docs/fidelity.md, "Faults and rollouts", says where each
comes from); `Platform` subclasses create and stop lives as each orchestrator does.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from scalelab.registry import platform_spec

__all__ = ["INF", "BOOT_S", "START_S", "Life", "Timings", "Platform", "DockerPlatform", "SwarmPlatform", "KubernetesPlatform", "platform_model", "probe_after"]

INF = math.inf
#: container running -> agent listening per platform, when `Timings.boot_s` is None (the recorded
#: runs: a compose container answered within a second of compose creating it, and nginx sent
#: none of the requests of that second to one that refused them; a pod without readiness
#: ran about 0.8 s after the ReplicaSet created it and refused connections for a second after that)
BOOT_S = {"compose": 0.3, "swarm": 1.0, "kubernetes": 1.2}
#: a container or pod created -> the agent listening, when neither `Timings.start_delay_s` nor the
#: scenario's ``sim.start_delay_s`` says (the recorded runs: compose 1 s; Kubernetes the platform's
#: 2 s; a Swarm task: `Timings.swarm_task_start_s` + its boot)
START_S = {"compose": 1.0, "kubernetes": 2.0}
#: a deleted pod's object stays listed (terminating) this long after its container is gone
POD_LINGER_S = 1.0


@dataclass
class Life:
    name: str
    version: str
    created: float
    started: float
    listening: float
    ready: float
    routed_from: float
    routed_until: float = INF
    closed: float = INF
    dead: float = INF
    hung: float = INF
    #: the platform no longer counts it ready (a failed check, a terminating pod)
    unready: float = INF
    #: Kubernetes: the pod is terminating from here (``replica_stop ... terminating``)
    terminating: float = INF
    #: stopped by SIGTERM: what it accepted before ``closed`` finishes if it can before ``dead``
    graceful: bool = False
    #: stopped by SIGTERM: SIGKILL comes here, whatever it still holds
    grace_until: float = INF
    free_at: float = 0.0  # its one worker is busy until then (FIFO)
    #: what ``target: same`` follows: the container or pod (its name); a Swarm task slot (a replacement keeps it)
    slot: str = ""

    def __post_init__(self) -> None:
        self.slot = self.slot or self.name

    def accepting(self, t: float) -> bool:
        return self.listening <= t < min(self.closed, self.dead)

    def routed(self, t: float) -> bool:
        return self.routed_from <= t < self.routed_until

    def counted_ready(self, t: float) -> bool:
        return self.ready <= t < min(self.unready, self.dead, self.terminating)

    def running(self, t: float) -> bool:
        return self.started <= t < self.dead


@dataclass(frozen=True)
class Timings:
    """Constants of the mechanisms; None = the platform's default (`platform_spec`, the workload)."""

    #: seconds after t0 the load generator starts its arrivals (Locust's start-up)
    load_start_s: float = 0.7
    #: created -> agent listening (None: the scenario's sim.start_delay_s, else `START_S`)
    start_delay_s: float | None = None
    #: container running -> agent listening (Python's start-up at the replica's CPU limit); None:
    #: the platform's (`BOOT_S`: compose 0.5 s, Swarm 1 s, Kubernetes 1.5 s, from the recorded runs)
    boot_s: float | None = None
    #: the kit's sampler looks at the replicas once a second, this long after each sample second
    poll_offset_s: float = 0.43
    #: the kit notices a rollout's end (its polls and watches)
    kit_notice_s: float = 0.3
    #: front door -> replica and back (a refused connection or a 502 costs this)
    net_s: float = 0.003
    exit_s: float = 0.2  # SIGTERM with nothing in flight -> the process gone
    nginx_connect_timeout_s: float = 2.0  # compose/nginx.conf proxy_connect_timeout
    nginx_resolver_valid_s: float = 1.0  # compose/nginx.conf resolver ... valid=1s: nginx asks again when its answer is older
    # docker (compose, swarm)
    health_interval_s: float = 3.0  # compose.yaml healthcheck: interval 3 s, timeout 3 s, retries 2
    health_timeout_s: float = 3.0
    health_retries: int = 2
    compose_cli_s: float = 0.6  # `docker compose up -d` -> the first container action
    recreate_s: float = 0.7  # an old container removed -> its replacement created
    stop_grace_s: float = 5.0  # compose.yaml stop_grace_period
    docker_backoff_s: float = 0.1  # restart policy: 100 ms, doubling
    docker_restart_s: float = 1.5  # the engine notices the exit and starts the container again
    swarm_dispatch_s: float = 0.8  # the orchestrator decides -> the task's container is created
    swarm_task_start_s: float = 0.5  # a task's container created -> running
    swarm_stop_grace_s: float = 10.0  # a service without stop_grace_period: SIGKILL 10 s after SIGTERM
    swarm_dns_lag_s: float = 2.0  # a task leaving -> out of Swarm's DNS (the recorded hang: requests reached it ~2 s after it was unhealthy)
    swarm_monitor_s: float | None = None  # None: the arm's update_config.monitor_s
    # kubernetes
    controller_s: float = 0.3  # a controller reacts to what it watches
    endpoint_delay_s: float = 0.8  # readiness/termination -> kube-proxy's rules
    readiness_period_s: float = 2.0  # k8s/deployment.yaml
    readiness_phase_s: float = 1.0  # the first readiness probe after the container starts: half a period, the expected phase
    readiness_failures: int = 2
    readiness_timeout_s: float = 1.0
    liveness_initial_s: float = 5.0
    liveness_period_s: float = 5.0
    liveness_failures: int = 3
    liveness_timeout_s: float = 2.0
    liveness_grace_s: float = 5.0
    pod_sandbox_s: float = 0.1  # a deleted pod's container gone -> its network gone (then its address answers nothing)
    kubelet_notice_s: float = 1.5  # a container's exit -> the kubelet starts it again (PLEG relist, sync; recorded: down 1-2 s)
    crash_backoff_s: float = 10.0  # CrashLoopBackOff: 10 s doubling (the first restart at once)
    crash_backoff_sync_s: float = 6.5  # a back-off over -> the kubelet's next pod sync starts it (recorded: down 18 s, 28 s)
    crash_backoff_cap_s: float = 300.0
    termination_grace_s: float = 30.0  # terminationGracePeriodSeconds (k8s/deployment.yaml)

    def with_overrides(self, **values: Any) -> Timings:
        return replace(self, **values)


def probe_after(start: float, at: float, period: float) -> float:
    """The first probe of a series (``start``, ``start + period``, ...) at or after ``at``."""
    if at <= start:
        return start
    return start + period * math.ceil((at - start) / period - 1e-9)


@dataclass
class Platform:
    """How one platform creates, restarts and stops replicas (subclasses per orchestrator)."""

    name: str
    timings: Timings
    warmup_s: float
    service_s: float
    seed: int
    lives: list[Life] = field(default_factory=list)
    kit_events: list[tuple[float, str, str]] = field(default_factory=list)  # (t, kind, detail): kit-side events
    front_door_down: float = INF  # the front door itself is gone from here (its host stopped): every connection refused

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed * 7919 + 17)
        self._names: set[str] = set()

    # -- names ---------------------------------------------------------------------------------
    def new_name(self, version: str) -> str:
        while True:
            name = self._make_name(version)
            if name not in self._names:
                self._names.add(name)
                return name

    def _make_name(self, version: str) -> str:
        return f"{self._rng.getrandbits(48):012x}"  # a container's hostname: its short id

    # -- lives -------------------------------------------------------------------------------
    @property
    def boot_s(self) -> float:
        return self.timings.boot_s if self.timings.boot_s is not None else BOOT_S.get(self.name, 1.0)

    @property
    def start_delay_s(self) -> float:
        if self.timings.start_delay_s is not None:
            return self.timings.start_delay_s
        return START_S.get(self.name, platform_spec(self.name).sim_start_delay_s)

    def spawn(self, t: float, version: str, name: str | None = None, *, readiness: bool = True) -> Life:
        listening = t + self.start_delay_s
        started = max(t, listening - self.boot_s)
        life = Life(name or self.new_name(version), version, t, started, listening, INF, INF)
        self._set_ready(life, readiness)
        self.lives.append(life)
        return life

    def _set_ready(self, life: Life, readiness: bool) -> None:
        raise NotImplementedError

    def initial(self, replicas: int, version: str = "v1") -> list[Life]:
        out = []
        for _ in range(replicas):
            life = self.spawn(-60.0, version)
            life.started = life.listening = life.ready = life.routed_from = -60.0
            out.append(life)
        return out

    def alive(self, t: float) -> list[Life]:
        return [x for x in self.lives if x.created <= t < x.dead and x.terminating > t]

    def ready_at(self, t: float) -> list[Life]:
        return [x for x in self.lives if x.counted_ready(t)]

    def seen_running(self, t: float) -> list[Life]:
        """What the kit's poll counts as running at ``t`` (a paused container is not running on Docker)."""
        return [x for x in self.lives if x.running(t) and (x.hung > t or self.name == "kubernetes")]

    def seen_ready(self, t: float) -> list[Life]:
        """What the kit's poll (and the samples' ``replicas_ready``) counts as ready at ``t``."""
        return [x for x in self.seen_running(t) if x.counted_ready(t)]

    def stop(self, life: Life, t: float, *, grace_s: float | None = None, drain: bool = True) -> float:
        """SIGTERM at ``t``: the agent stops accepting and finishes what it holds (one request at
        most in service, the rest of its queue after it), SIGKILL at the grace period; without
        its drain (``rollout.drain: false``) it exits at once. Returns when it is gone."""
        if not drain:
            self.kill(life, t)
            return t
        grace = self.timings.stop_grace_s if grace_s is None else grace_s
        life.closed = min(life.closed, t)
        life.graceful = True
        life.grace_until = min(life.grace_until, t + grace)
        life.unready = min(life.unready, t)
        life.dead = min(life.dead, t + min(grace, self.timings.exit_s))  # what it holds then keeps it up longer (`requests`)
        self._unroute(life, t)
        return life.dead

    def _unroute(self, life: Life, t: float) -> None:
        life.routed_until = min(life.routed_until, life.dead)

    def kill(self, life: Life, t: float) -> None:
        """SIGKILL at ``t``: what it holds fails at once."""
        life.dead = min(life.dead, t)
        life.closed = min(life.closed, t)
        life.unready = min(life.unready, t)
        self._unroute(life, t)

    def hang(self, life: Life, t: float) -> None:
        life.hung = min(life.hung, t)

    # -- faults (subclasses: what the orchestrator does about them) ----------------------------
    def fault(self, kind: str, life: Life, t: float) -> None:
        raise NotImplementedError

    # -- what the kit's sampler sees -------------------------------------------------------------
    def observe(self, ticks: Iterable[float]) -> list[tuple[float, str, str]]:
        """replica_start / replica_ready / replica_stop as the kit's poll reports them (compose and
        Swarm: containers by id, running and healthy; `platforms.base.lifecycle_events`)."""
        out: list[tuple[float, str, str]] = []
        seen_running: set[str] = set()
        seen_ready: set[str] = set()
        for t in ticks:
            running = {x.name for x in self.seen_running(t)}
            ready = {x.name for x in self.seen_ready(t)}
            out += [(t, "replica_start", n) for n in sorted(running - seen_running)]
            out += [(t, "replica_ready", n) for n in sorted(ready - seen_ready)]
            out += [(t, "replica_stop", n) for n in sorted(seen_running - running)]
            seen_running, seen_ready = running, ready & running
        return out


class DockerPlatform(Platform):
    """compose: Docker's restart policy (always), its healthcheck, nginx resolving the service name."""

    def _set_ready(self, life: Life, readiness: bool) -> None:
        tm = self.timings
        # Docker runs the first check one interval after the start, then every interval
        life.ready = probe_after(life.started + tm.health_interval_s, life.listening + self.warmup_s, tm.health_interval_s)
        life.routed_from = life.started  # Docker's DNS lists a running container, healthy or not

    def fault(self, kind: str, life: Life, t: float) -> None:
        tm = self.timings
        if kind == "kill":  # `docker kill` is a manual stop: the restart policy does nothing
            self.kill(life, t)
        elif kind == "crash":  # the process died: the restart policy restarts it, with back-off
            self.kill(life, t)
            back = self._restarts(life.name, t)
            self.spawn_restart(life, t + back + tm.docker_restart_s)
        elif kind == "hang":  # SIGSTOP: still running and in DNS; its healthcheck times out: "unhealthy", and compose does nothing
            self.hang(life, t)
            life.unready = min(life.unready, self.unhealthy_at(life, t))

    def unhealthy_at(self, life: Life, t: float) -> float:
        """When Docker calls a container that hung at ``t`` unhealthy: its next check and the
        ``retries - 1`` after it time out (a check waits ``interval`` after the previous one ended)."""
        tm = self.timings
        first = probe_after(life.started + tm.health_interval_s, t, tm.health_interval_s)
        return first + tm.health_retries * tm.health_timeout_s + (tm.health_retries - 1) * tm.health_interval_s

    def _restarts(self, name: str, t: float) -> float:
        """The restart policy's delay: 100 ms doubling per restart in a row (reset after 10 s up)."""
        before = [x for x in self.lives if x.name == name and x.dead < t]
        streak = 0
        for x in sorted(before, key=lambda x: x.dead, reverse=True):
            if x.dead - x.started > 10.0:
                break
            streak += 1
        return float(self.timings.docker_backoff_s * 2**streak)

    def spawn_restart(self, old: Life, t: float) -> Life:
        """The same container started again: same name, a new incarnation (the start delay is the
        process's own start-up, the container already exists)."""
        listening = t + self.boot_s
        life = Life(old.name, old.version, t, t, listening, INF, INF)
        self._set_ready(life, True)
        self.lives.append(life)
        return life


class SwarmPlatform(DockerPlatform):
    """Swarm: a failed task is replaced by a new one (a new container) after the restart policy's
    delay; an unhealthy task is shut down (SIGTERM, SIGKILL after the stop grace) and replaced;
    DNS (dnsrr) lists healthy tasks only. A task's container runs ``swarm_task_start_s`` after it
    is created."""

    restart_delay_s: float = 5.0
    update_config: Any = None  # the arm's swarm.update_config (rollouts)

    def spawn(self, t: float, version: str, name: str | None = None, *, readiness: bool = True) -> Life:
        if self.timings.start_delay_s is not None:
            return super().spawn(t, version, name, readiness=readiness)
        started = t + self.timings.swarm_task_start_s
        life = Life(name or self.new_name(version), version, t, started, started + self.boot_s, INF, INF)
        self._set_ready(life, readiness)
        self.lives.append(life)
        return life

    def _set_ready(self, life: Life, readiness: bool) -> None:
        super()._set_ready(life, readiness)
        life.routed_from = life.ready

    def replace(self, life: Life, version: str | None = None) -> Life:
        """The task that replaces ``life`` once it is gone, after the restart policy's delay (on
        ``version``, default the same)."""
        new = self.spawn(life.dead + self.restart_delay_s + self.timings.swarm_dispatch_s, version or life.version)
        new.slot = life.slot
        return new

    def fault(self, kind: str, life: Life, t: float) -> None:
        tm = self.timings
        if kind in ("kill", "crash"):  # the task failed
            self.kill(life, t)
            self.replace(life)
        elif kind == "hang":  # SIGSTOP: unhealthy after the healthcheck's retries, then shut down (SIGTERM is ignored) and replaced
            self.hang(life, t)
            unhealthy = self.unhealthy_at(life, t)
            life.unready = min(life.unready, unhealthy)
            self.kill(life, unhealthy + tm.swarm_stop_grace_s)
            life.routed_until = min(life.routed_until, unhealthy)  # a task shutting down leaves DNS (and nginx's cache swarm_dns_lag_s later)
            self.replace(life)


class KubernetesPlatform(Platform):
    """Kubernetes: ReplicaSets replace pods, the kubelet restarts containers in place (back-off),
    readiness and liveness probes, the Service's endpoints a sync delay behind."""

    def _make_name(self, version: str) -> str:
        alphabet = "bcdfghjklmnpqrstvwxz2456789"
        template = {"v1": "7894cc45b6", "v2": "75cdc5f95c"}.get(version, "5f6d7c8b9a")
        return f"ai-agent-{template}-" + "".join(self._rng.choice(alphabet) for _ in range(5))

    def _set_ready(self, life: Life, readiness: bool) -> None:
        tm = self.timings
        if readiness:  # probes from the container's start, every period; /readyz passes after the warm-up
            life.ready = probe_after(life.started + tm.readiness_phase_s, life.listening + self.warmup_s, tm.readiness_period_s)
        else:  # no readiness probe: ready once the container runs
            life.ready = life.started
        life.routed_from = life.ready + tm.endpoint_delay_s

    def _unroute(self, life: Life, t: float) -> None:
        life.routed_until = min(life.routed_until, t + self.timings.endpoint_delay_s)

    def delete(self, life: Life, t: float, *, pre_stop_s: float = 0.0, grace_s: float | None = None, drain: bool = True) -> float:
        """The pod is deleted at ``t``: endpoints drop it (after the sync delay) while the preStop
        sleep runs, then SIGTERM (drain; without it the agent exits at once), SIGKILL at the grace
        period. Returns when it is gone."""
        grace = self.timings.termination_grace_s if grace_s is None else grace_s
        life.terminating = min(life.terminating, t)
        life.unready = min(life.unready, t)
        self._unroute(life, t)
        sigterm = t + min(pre_stop_s, grace)
        if not drain:
            life.closed = life.dead = min(life.dead, sigterm)
            return life.dead
        life.closed = min(life.closed, sigterm)
        life.graceful = True
        life.grace_until = min(life.grace_until, t + grace)
        life.dead = min(life.dead, sigterm + min(max(0.0, grace - pre_stop_s), self.timings.exit_s))
        return life.dead

    def fault(self, kind: str, life: Life, t: float) -> None:
        tm = self.timings
        if kind == "kill":  # delete the pod, grace 0: the ReplicaSet creates a replacement at once
            life.terminating = t
            self.kill(life, t)
            self.spawn(t + tm.controller_s, life.version)
        elif kind == "crash":  # the kubelet restarts the container in place, with back-off
            self.kill(life, t)
            life.unready = t + tm.kubelet_notice_s
            life.routed_until = life.unready + tm.endpoint_delay_s
            self.restart_in_place(life, t + tm.kubelet_notice_s)
        elif kind == "hang":  # SIGSTOP: readiness fails (out of the endpoints), then liveness restarts it
            self.hang(life, t)
            first_fail = probe_after(life.started, t, tm.readiness_period_s) + tm.readiness_timeout_s
            life.unready = first_fail + tm.readiness_period_s * (tm.readiness_failures - 1)
            life.routed_until = life.unready + tm.endpoint_delay_s
            first_live = probe_after(life.started + tm.liveness_initial_s, t, tm.liveness_period_s)
            killed = first_live + tm.liveness_period_s * (tm.liveness_failures - 1) + tm.liveness_timeout_s + tm.liveness_grace_s
            life.dead = min(life.dead, killed)
            life.closed = min(life.closed, killed)
            self.restart_in_place(life, killed + tm.kubelet_notice_s)

    def restart_in_place(self, old: Life, t: float) -> Life:
        """The kubelet starts the container again in the same pod: at once the first time, then
        after the CrashLoopBackOff delay (10 s, doubling, capped), reset after 10 min up."""
        tm = self.timings
        restarts = sum(1 for x in self.lives if x.name == old.name) - 1  # the pod's first life is not a restart
        delay = 0.0 if restarts == 0 else min(tm.crash_backoff_cap_s, tm.crash_backoff_s * 2 ** (restarts - 1)) + tm.crash_backoff_sync_s
        at = t + delay
        life = Life(old.name, old.version, at, at, at + self.boot_s, INF, INF)
        self._set_ready(life, True)
        self.lives.append(life)
        return life

    def observe(self, ticks: Iterable[float]) -> list[tuple[float, str, str]]:
        """Pods as the kit's Kubernetes poll reports them: start = the pod appears, restart = its
        container's restart count rose, ready = its Ready condition turns true, stop = it is
        terminating (or gone)."""
        out: list[tuple[float, str, str]] = []
        seen: dict[str, tuple[bool, bool]] = {}  # name -> (ready, deleting)
        restarts: dict[str, int] = {}
        # in creation order; pods created together by name (a set's order changes from run to run)
        names = sorted({x.name for x in self.lives}, key=lambda n: (min(x.created for x in self.lives if x.name == n), n))
        for t in ticks:
            now: dict[str, tuple[bool, bool]] = {}
            for n in names:
                mine = [x for x in self.lives if x.name == n]
                if not any(x.created <= t for x in mine):
                    continue
                last = max((x for x in mine if x.created <= t), key=lambda x: x.created)
                gone = last.terminating <= t and t >= last.dead + POD_LINGER_S  # the API object goes a moment after the container
                if gone and not any(x.created > t for x in mine):
                    continue
                now[n] = (any(x.counted_ready(t) for x in mine), last.terminating <= t)
            for n, (ready, deleting) in now.items():
                old = seen.get(n)
                if old is None:
                    out.append((t, "replica_start", n))
                restarted = sum(1 for x in self.lives if x.name == n and x.created <= t) - 1
                if old is not None and restarted > restarts.get(n, 0):
                    died = max(x.dead for x in self.lives if x.name == n and x.dead <= t)
                    back = max(x.started for x in self.lives if x.name == n and x.created <= t)
                    out.append((t, "replica_restart", f"{n} restart {restarted} (Error, exit 137, down {back - died:.0f} s)"))
                restarts[n] = restarted
                if ready and (old is None or not old[0]):
                    out.append((t, "replica_ready", n))
                if deleting and (old is None or not old[1]):
                    out.append((t, "replica_stop", n))
            for n, old in seen.items():
                if n not in now and not old[1]:
                    out.append((t, "replica_stop", n))
            seen = now
        return out


def platform_model(platform: str, timings: Timings, *, warmup_s: float, service_s: float, seed: int, swarm: Any = None) -> Platform:
    """The mechanism model of a platform name (compose, swarm, kubernetes)."""
    if platform == "kubernetes":
        return KubernetesPlatform(platform, timings, warmup_s, service_s, seed)
    if platform == "swarm":
        model = SwarmPlatform(platform, timings, warmup_s, service_s, seed)
        if swarm is not None:
            model.restart_delay_s = float(swarm.restart_policy.delay_s)
            model.update_config = swarm.update_config
        return model
    return DockerPlatform(platform, timings, warmup_s, service_s, seed)
