"""The ai-agent service as a per-second fluid queue: replicas, CPU, latency, errors, start-up.

Each replica runs one worker thread (the agent's default), so it serves requests FIFO at
``c = min(cpu_limit, 1)`` cores: a request of ``work_ms`` CPU-ms takes ``S = work_ms / c`` ms.
All replicas share one host of ``host_cores`` (the scenario's CPU budget minus the calibrated
host overhead). A busy replica runs at its CPU limit (its CFS quota) as long as the host has
cores for every busy replica; only when more are busy than the host can run at their limits do
they share it, and with all of them busy that share is the pool's capacity μ. The load balancer
spreads requests over **ready** replicas only (nginx on compose, the Service on Kubernetes);
new replicas are cold: they start after ``start_delay_s`` and are ready ``warmup_s`` later.

Per second: ``A`` requests arrive, the pool serves ``min(backlog + A, μ)`` and the rest waits.
Latency = service time + the fluid backlog wait + a random-arrival wait from Kingman's G/G/1
formula (``E[Wq] ≈ ρ/(1-ρ) · (ca²+cs²)/2 · S``, cs² = 0 for a fixed CPU cost, ca² = 1 for random
spreading, 1/n for round-robin over n replicas, ρ the replicas' utilisation at the speed they
run) with an exponential tail. A request that would wait past the client's ``timeout_s`` is
abandoned: an error in the second the client gives up (the kit counts a request in the second it
ends), with the timeout as its latency. Near the timeout only part of what the replicas serve
finishes in time (`_late_share`); a queue beyond ``queue_limit`` per replica is refused at once.
This costs O(1) per second, so a simulated day takes well under a second. Kept-alive connections
pinned to pods (per-connection balancing) give each pod its own queue (`_advance_queues`).
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from scalelab.registry import platform_spec
from scalelab.scenario import Arm, Scenario
from scalelab.sim.split import SplitQueues

__all__ = ["ServiceParams", "Replica", "Service", "StepResult", "LIFECYCLE_EVENTS"]

LIFECYCLE_EVENTS = ("replica_start", "replica_ready", "replica_stop")
#: Stretches at least this long with nobody waiting are computed as arrays (`Service._quiet_block`).
QUIET_STRETCH_S = 64
#: Weight of the newest second in the smoothed arrival rate (a time constant of ~5 s).
RATE_SMOOTHING = 0.2
#: Random balancing: queues per replica (`split`) once the smoothed arrival rate reaches this share
#: of what the ready replicas can serve (close to full, one replica's queue drifts for many seconds).
SPLIT_ENTER_LOAD = 0.85
_NAN = float("nan")
_log = math.log


@dataclass(frozen=True)
class ServiceParams:
    work_ms: float = 50.0  # CPU-ms of its quota a replica spends per request while requests wait (its service rate)
    cpu_ms: float | None = None  # CPU-ms the counters see per request while a replica keeps up (None: work_ms)
    cpu_request: float = 0.5
    cpu_limit: float = 0.5
    memory_mb: int = 256
    timeout_s: float = 10.0
    warmup_s: float = 5.0
    start_delay_s: float = 1.0
    spreading: str = "round-robin"  # round-robin | random (nginx on compose, kube-proxy: registry.PlatformSpec.sim_spreading)
    host_cores: float | None = None
    queue_limit: int = 2048  # requests waiting per replica before refusals (uvicorn backlog)
    idle_cores: float = 0.002  # what an idle replica uses
    base_mem_mb: float = 48.0  # resident memory of an idle replica
    mem_per_request_mb: float = 0.02
    #: per-request (nginx; a Service with a new connection per request) | per-connection (a Service
    #: with kept-alive client connections: each connection stays on the pod it reached when it opened)
    balancing: str = "per-request"
    client_connections: int | None = None  # the client's cap on connections (None: as many as in flight)
    keepalive_idle_s: float = 5.0  # the agent (uvicorn) closes a connection idle this long
    #: seconds from a replica's start until the front door sends it requests whether it is ready or
    #: not (compose: nginx re-resolves Docker's DNS every second, and Docker's DNS lists a running
    #: container before its health check passes); None: only ready replicas get requests (a Service)
    route_after_start_s: float | None = None
    #: spread of the replicas' service rates at their limit (coefficient of variation; 0: all equal),
    #: applied to the queues per replica of random per-request balancing (`split.speed_levels`)
    speed_cv: float = 0.0

    @classmethod
    def for_arm(cls, scenario: Scenario, arm: Arm, **overrides: object) -> ServiceParams:
        w = scenario.workload
        spec = platform_spec(arm.platform)
        values: dict[str, object] = dict(
            work_ms=w.work_ms,
            cpu_request=w.cpu_request,
            cpu_limit=w.cpu_limit,
            memory_mb=w.memory_mb,
            timeout_s=w.timeout_s,
            warmup_s=w.warmup_s,
            start_delay_s=spec.sim_start_delay_s,
            spreading=spec.sim_spreading,
            host_cores=scenario.cpu_budget,
            balancing="per-connection" if arm.platform == "kubernetes" and scenario.load.connections == "keep-alive" else "per-request",
            client_connections=scenario.load.client_connections,
            route_after_start_s=spec.sim_route_after_start_s,
        )
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]


@dataclass
class Replica:
    """One container or pod: created → started (running, not ready) → ready → stopped."""

    name: str
    created_s: float
    started_s: float
    ready_s: float
    stopped_s: float | None = None
    joined_step: int = -1  # the first whole second it serves traffic
    start_logged: bool = False
    routed_s: float | None = None  # when the front door starts sending it requests (None: when ready)
    ready_logged: bool = False


class StepResult(NamedTuple):
    """What one second of service produced (a tuple: the loop makes 86,400 of them a day)."""

    served: float
    errors: float
    p50_ms: float | None
    p95_ms: float | None
    cpu_cores: float
    in_flight: float
    mem_mb: float
    ready: int
    running: int
    share_sq: float = float("nan")  # Σ (share of the requests)² over the ready replicas: 1/n when even


@dataclass
class _Event:
    t_s: float
    kind: str
    replicas: int
    detail: str


class Service:
    """The replicas and the shared queue; ``step(t, arrivals)`` advances one second."""

    def __init__(self, params: ServiceParams, replicas: int, *, started_before_s: float = 60.0) -> None:
        self.p = params
        self.replicas: list[Replica] = []  # live replicas (stopped ones are dropped)
        self.desired = replicas
        self._serial = 0
        self.backlog = 0.0
        self.events: list[_Event] = []
        # per-ready-replica cumulative busy CPU (core-seconds) at each whole second
        self._pool_cum: list[float] = [0.0]
        self._cum = 0.0  # the last element of _pool_cum
        self._busy: list[float] = []
        self._pending: list[Replica] = []
        self.ready_count = 0
        self.mean_latency_s = params.work_ms / 1000.0
        self.rate = 0.0  # arrival rate, smoothed: the random-arrival wait depends on it, not on one second's count
        self._pool_key: tuple[int, int] = (-1, -1)
        self._pool_cached = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        # per-connection balancing: open client connections per replica, per-replica queues
        self._conns: dict[str, int] = {}
        self._queues: dict[str, float] = {}
        self._excess_s = 0
        self._in_flight = 0.0
        # requests abandoned at the client's timeout, by the second they fail in (arrival + timeout)
        self._expiring: dict[int, float] = {}
        # the pooled queue in FIFO order: (arrival second, first, last cumulative position) of each cohort
        self._fifo: deque[tuple[int, float, float]] = deque()
        self._admitted = self._departed = 0.0
        self._expire_after_s = max(1, round(params.timeout_s))
        self._rng = random.Random(len(params.__repr__()))
        # random per-request balancing: a queue per replica while requests wait (`split`)
        self._split = SplitQueues(params.timeout_s, params.queue_limit, speed_cv=params.speed_cv) \
            if params.spreading == "random" and params.balancing == "per-request" else None
        for _ in range(replicas):
            r = self._new(-started_before_s)
            r.started_s = r.ready_s = -started_before_s
            r.routed_s = None
            r.joined_step, r.start_logged, r.ready_logged = 0, True, True
        self._recount()

    # -- replicas ------------------------------------------------------------------------------
    def _new(self, now: float) -> Replica:
        self._serial += 1
        started = now + self.p.start_delay_s
        r = Replica(f"ai-agent-{self._serial}", now, started, started + self.p.warmup_s)
        if self.p.route_after_start_s is not None:  # the front door does not wait for readiness
            r.routed_s = min(r.ready_s, started + self.p.route_after_start_s)
        self.replicas.append(r)
        return r

    def scale_to(self, n: int, now: float) -> None:
        """Create cold replicas or stop the newest (not-ready first), as compose and ReplicaSets do."""
        live = list(self.replicas)
        self.desired = n
        for _ in range(n - len(live)):
            self._pending.append(self._new(now))
        if n < len(live):
            order = {id(r): i for i, r in enumerate(live)}
            victims = sorted(live, key=lambda r: (r.joined_step >= 0, -r.created_s, -order[id(r)]))
            for r in victims[: len(live) - n]:
                r.stopped_s = now
                if r in self._pending:
                    self._pending.remove(r)
                self.events.append(_Event(now, "replica_stop", n, r.name))
            self.replicas = [r for r in self.replicas if r.stopped_s is None]
            self._recount()

    def _recount(self) -> None:
        self.ready_count = sum(1 for r in self.replicas if r.joined_step >= 0)
        if self._split is not None:
            self._split.sync([r.name for r in self.replicas if r.joined_step >= 0])

    def _lifecycle(self, t: int) -> None:
        """Starts and readiness up to the start of second ``t``; a ready replica serves from ``t``."""
        still: list[Replica] = []
        joined = False
        for r in self._pending:
            if not r.start_logged and r.started_s <= t:
                r.start_logged = True
                self.events.append(_Event(r.started_s, "replica_start", self.desired, r.name))
            if not r.ready_logged and r.ready_s <= t:
                r.ready_logged = True
                self.events.append(_Event(r.ready_s, "replica_ready", self.desired, r.name))
            if r.joined_step < 0 and (r.ready_s if r.routed_s is None else r.routed_s) <= t:
                r.joined_step, joined = t, True
            if not r.ready_logged or r.joined_step < 0:
                still.append(r)
        if joined or len(still) != len(self._pending):
            self._pending = still
            self._recount()


    # -- one second ----------------------------------------------------------------------------
    def _pool(self, n: int, running: int) -> tuple[float, float, float, float, float, float, float]:
        """The pool's figures for n ready of ``running`` replicas: (μ requests/s when all are busy,
        service time ms when all are busy, arrival variability, idle CPU, service time ms of a
        replica at its CPU limit, how many replicas the host runs at their limits at once, ms per
        busy replica beyond that).

        A replica runs at its CPU limit (the CFS quota) while the host has cores for every busy
        replica; only when more replicas are busy than the host can run at their limits do they
        share it (``host / busy`` each). All busy at once is the pool's capacity μ.
        """
        key = (n, running)
        if key != self._pool_key:
            p = self.p
            limit = min(p.cpu_limit, 1.0)
            per = limit
            host = float("inf")
            if p.host_cores is not None:
                host = max(p.host_cores - (running - n) * p.idle_cores, 0.01)
                per = min(per, host / n)
            ca2 = 1.0 if p.spreading == "random" else 1.0 / n  # (ca² + cs²)/2, cs² = 0
            self._pool_key = key
            self._pool_cached = (n * per * 1000.0 / p.work_ms, p.work_ms / per, ca2 / 2.0, running * p.idle_cores,
                                 p.work_ms / limit, host / limit, p.work_ms / host)
        return self._pool_cached

    def step(self, t: int, arrivals: float) -> StepResult:
        """Serve second ``[t, t+1)`` with ``arrivals`` new requests."""
        r = self.advance(t, arrivals)
        return StepResult(r[0], r[1], None if r[2] != r[2] else r[2], None if r[3] != r[3] else r[3], r[4], r[5], r[6], int(r[7]), int(r[8]))

    def advance(self, t: int, arrivals: float) -> tuple[float, ...]:
        """`step` as a plain tuple in `StepResult` order, NaN for a missing latency."""
        rows: list[Any] = []
        self._run_seconds(t, (arrivals,), rows)
        return rows[0]

    def run(self, t0: int, arrivals: Sequence[float], rows: list[Any]) -> None:
        """Serve seconds ``t0, t0+1, ...`` with ``arrivals[i]`` new requests in second ``t0+i``; append
        the rows to ``rows`` (`StepResult` order, NaN for a missing latency): one tuple a second,
        or one array for a quiet stretch (`_quiet_block`).

        The engine's fast path: it calls this for the seconds between two scaler actions. A stretch
        of at least `QUIET_STRETCH_S` seconds in which nobody waits is computed as arrays; the rest
        second by second (`_run_seconds`).
        """
        total = len(arrivals)
        if total < QUIET_STRETCH_S or self.p.balancing != "per-request":
            self._run_seconds(t0, arrivals, rows)
            return
        a = np.asarray(arrivals, dtype=np.float64)
        over: tuple[float, np.ndarray] | None = None  # (μ, the seconds whose arrivals exceed it)
        i = 0
        while i < total:
            if not self._pending and self.ready_count and not self.backlog and not (self._split is not None and self._split.active):
                mu = self._pool(self.ready_count, len(self.replicas))[0]
                if over is None or over[0] != mu:
                    over = (mu, np.flatnonzero(a > mu))
                k = int(np.searchsorted(over[1], i))
                end = int(over[1][k]) if k < len(over[1]) else total
                if end - i >= QUIET_STRETCH_S:
                    rows.append(self._quiet_block(a[i:end]))
                    i = end
                    continue
                window = max(end - i + 1, QUIET_STRETCH_S)
            else:
                window = QUIET_STRETCH_S
            self._run_seconds(t0 + i, arrivals[i : i + window], rows)
            i += window

    def _run_seconds(self, t0: int, arrivals: Sequence[float], rows: list[Any]) -> None:
        """`run` one second at a time, its constants in locals."""
        p = self.p
        emit = rows.append
        busy_log = self._busy.append
        cum_log = self._pool_cum.append
        queue_limit, timeout_s, work_ms, idle_cores = p.queue_limit, p.timeout_s, p.work_ms, p.idle_cores
        cpu_ms = p.work_ms if p.cpu_ms is None else p.cpu_ms
        base_mem, mem_per_request = p.base_mem_mb, p.mem_per_request_mb
        pinned = p.balancing == "per-connection"
        cap_ms = 1000.0 * timeout_s  # slower requests are errors, not completions
        expire_after = self._expire_after_s
        expiring = self._expiring
        demand_per_rate = work_ms / 1000.0 / min(p.cpu_limit, 1.0)  # replicas busy at their limit per request/s
        split, limit, work_s = self._split, min(p.cpu_limit, 1.0), work_ms / 1000.0
        smooth, log = RATE_SMOOTHING, _log
        split_active = split is not None and split.active
        # the state, in locals for the loop (written back when another method needs it, and at the end)
        rate, backlog, cum, mean_latency = self.rate, self.backlog, self._cum, self.mean_latency_s
        pool_n = pool_running = -1
        mu = s_sat = variability = idle = s_free = k_free = ms_per_busy = enter = one_over_n = ms_over_n = 0.0
        t = t0
        running, n = len(self.replicas), self.ready_count  # they change only while replicas are pending
        for arrivals_t in arrivals:
            sec = t
            t += 1
            if self._pending:
                self.backlog = backlog
                self._lifecycle(sec)
                running = len(self.replicas) - sum(1 for r in self._pending if r.started_s > sec)
                n = self.ready_count
            due = expiring.pop(sec, 0.0) if expiring else 0.0  # requests abandoned earlier, failing now
            if n == 0 or pinned:
                self.rate, self.backlog, self._cum, self.mean_latency_s = rate, backlog, cum, mean_latency
                if n == 0:
                    if split is not None and split.active:  # nobody left to serve what waited
                        backlog += split.waiting
                        split.reset()
                        split_active = False
                    emit((0.0, arrivals_t + backlog + due, _NAN, _NAN, running * idle_cores, 0.0, running * base_mem, 0, running, _NAN))
                    self.backlog = 0.0
                    self._queues = {}
                    busy_log(0.0)
                    cum_log(cum)
                else:
                    emit(self._advance_queues(sec, arrivals_t, n, running, due))
                rate, backlog, cum, mean_latency = self.rate, self.backlog, self._cum, self.mean_latency_s
                continue
            if n != pool_n or running != pool_running:
                mu, s_sat, variability, idle, s_free, k_free, ms_per_busy = self._pool(n, running)
                pool_n, pool_running = n, running
                enter = SPLIT_ENTER_LOAD * mu
                one_over_n, ms_over_n = 1.0 / n, 1000.0 * n  # once per pool: the same floats as computing them every second
            rate = rate + smooth * (arrivals_t - rate)
            # requests wait, or the replicas run close to full: a queue per replica (`split`)
            if split is not None and (split_active or arrivals_t > mu or rate > enter):
                host = p.host_cores - (running - n) * idle_cores if p.host_cores is not None else math.inf
                served, errors, p50, p95, busy = split.step(sec, arrivals_t, rate / n, max(host, 0.01), limit, work_s, cpu_ms / 1000.0)
                split_active = split.active
                errors += due
                backlog = split.waiting
                per = busy / n
                busy_log(per)
                cum += per
                cum_log(cum)
                in_flight = backlog + busy / limit
                mem = running * base_mem + in_flight * mem_per_request
                if served <= 0.0:
                    slow = cap_ms if due > 0.0 else _NAN
                    emit((0.0, errors, slow, slow, busy + idle, in_flight, mem, n, running, one_over_n))
                    continue
                if due > 0.0:
                    p50, p95 = _with_timeouts(p50, p95, due / (served + due), cap_ms)
                mean_latency = p50 / 1000.0
                emit((served, errors, p50 if p50 < cap_ms else cap_ms, p95 if p95 < cap_ms else cap_ms, busy + idle, in_flight, mem, n, running, one_over_n))
                continue
            before = backlog
            total = before + arrivals_t
            served = total if total < mu else mu
            after = total - served
            errors = due
            wait50 = wait95 = 0.0  # with a standing queue the fluid backlog wait is the wait
            if after > 0.0:
                service_ms = s_sat  # every replica busy
                bound = queue_limit * n
                admitted = arrivals_t
                if after > bound:  # refused at once: the replicas' accept queues are full
                    errors += after - bound
                    admitted -= after - bound
                    after = bound
                timeout_backlog = mu * timeout_s
                if after > timeout_backlog:  # would wait past the client's timeout: they fail when it expires
                    expiring[sec + expire_after] = expiring.get(sec + expire_after, 0.0) + after - timeout_backlog
                    admitted -= after - timeout_backlog
                    after = timeout_backlog
            else:
                demand = rate * demand_per_rate
                service_ms = s_free if demand <= k_free or demand <= 1.0 else (ms_per_busy * demand if demand < n else s_sat)
                # the random-arrival wait (`_random_wait_s`, inlined), at the replicas' utilisation at that speed
                rho = rate * service_ms / ms_over_n
                if rho > 0.05 and variability > 0.0:
                    if rho > 0.95:
                        rho = 0.95
                    mean_given_wait = service_ms * variability / (1.0 - rho)  # ms
                    wait95 = mean_given_wait * log(rho / 0.05) / 1000.0
                    if rho > 0.5:
                        wait50 = mean_given_wait * log(rho / 0.5) / 1000.0
            backlog = after
            if before > 0.0 or after > 0.0:  # a queue: the waits of the requests served in this second
                f50, f95 = self._fifo_waits(sec, admitted if after > 0.0 else arrivals_t, served, after)
                if served > 0.0:
                    # requests that reach a replica after waiting almost the client's timeout finish too late
                    errors += served * _late_share(f50, service_ms / 1000.0, timeout_s, rate / n)
            else:
                f50 = f95 = 0.0
            busy = served * (work_ms if after > 0.0 else cpu_ms) / 1000.0  # at its quota while requests wait
            per = busy / n
            busy_log(per)
            cum += per
            cum_log(cum)
            in_flight = after + served * service_ms / 1000.0
            mem = running * base_mem + in_flight * mem_per_request
            if served <= 0.0:
                slow = cap_ms if due > 0.0 else _NAN
                emit((0.0, errors, slow, slow, busy + idle, in_flight, mem, n, running, one_over_n))
                continue
            p50 = service_ms + 1000.0 * (f50 + wait50)
            p95 = service_ms + 1000.0 * (f95 + wait95)
            if due > 0.0:  # the abandoned requests complete (as errors) at the client's timeout
                p50, p95 = _with_timeouts(p50, p95, due / (served + due), cap_ms)
            mean_latency = p50 / 1000.0
            emit((served, errors, p50 if p50 < cap_ms else cap_ms, p95 if p95 < cap_ms else cap_ms, busy + idle, in_flight, mem, n, running, one_over_n))
        self.rate, self.backlog, self._cum, self.mean_latency_s = rate, backlog, cum, mean_latency

    def _fifo_waits(self, sec: int, admitted: float, served: float, after: float) -> tuple[float, float]:
        """The median and the 95th-percentile wait of the requests served in second ``sec`` (FIFO).

        The kit reports a request in the second it ends, so a second's latency is that of the
        requests that *left* the queue in it, which came when the queue was what it was then: the
        queue's arrivals and departures are kept as cumulative positions, the arrival second of
        each admitted cohort with them, and a served position's wait is its departure time minus
        its arrival time (both spread evenly over their second).
        """
        fifo = self._fifo
        lo = self._admitted
        if admitted > 0.0:
            self._admitted = lo + admitted
            fifo.append((sec, lo, self._admitted))
        gone = self._departed
        self._departed = gone + served
        while fifo and fifo[0][2] <= gone + 1e-9:
            fifo.popleft()

        def wait(x: float) -> float:
            arrival = float(sec)
            for s, a_lo, a_hi in fifo:
                if x <= a_hi:
                    arrival = s + ((x - a_lo) / (a_hi - a_lo) if a_hi > a_lo else 0.5)
                    break
            return max(0.0, sec + (x - gone) / served - arrival) if served > 0.0 else 0.0

        # the slowest 5% are the oldest of them while the queue drains, the newest while it grows
        w50, w95 = wait(gone + 0.5 * served), max(wait(gone + 0.05 * served), wait(gone + 0.95 * served))
        if after <= 0.0:  # the queue is empty: start counting afresh
            fifo.clear()
            self._admitted = self._departed = 0.0
        return w50, w95

    def _quiet_block(self, arrivals: np.ndarray) -> np.ndarray:
        """A stretch in which nobody waits (no backlog, no pending replica, every second's arrivals
        within the pool's capacity), computed a column at a time: the per-second arithmetic of
        `_run_seconds` on arrays. Returns the rows as one array (`StepResult` order)."""
        p = self.p
        n, running = self.ready_count, len(self.replicas)
        _mu, s_sat, variability, idle, s_free, k_free, ms_per_busy = self._pool(n, running)
        rates = []
        rate = self.rate
        for a in arrivals.tolist():  # the smoothed rate: sequential, cheap
            rate = rate + RATE_SMOOTHING * (a - rate)
            rates.append(rate)
        r = np.array(rates)
        demand = r * (p.work_ms / 1000.0 / min(p.cpu_limit, 1.0))
        service_ms = np.where((demand <= k_free) | (demand <= 1.0), s_free, np.where(demand < n, ms_per_busy * demand, s_sat))
        rho = np.minimum(r * service_ms / (1000.0 * n), 0.95)
        waiting = (rho > 0.05) & (variability > 0.0)
        mean_given_wait = service_ms * variability / (1.0 - rho)
        with np.errstate(divide="ignore", invalid="ignore"):
            wait95 = np.where(waiting, mean_given_wait * np.log(rho / 0.05) / 1000.0, 0.0)
            wait50 = np.where(waiting & (rho > 0.5), mean_given_wait * np.log(rho / 0.5) / 1000.0, 0.0)
        busy = arrivals * (p.work_ms if p.cpu_ms is None else p.cpu_ms) / 1000.0
        per = busy / n
        cum = np.cumsum(np.concatenate(([self._cum], per)))[1:]
        self._busy.extend(per.tolist())
        self._pool_cum.extend(cum.tolist())
        self._cum, self.rate = float(cum[-1]), rate
        in_flight = arrivals * service_ms / 1000.0
        cap_ms = 1000.0 * p.timeout_s
        some = arrivals > 0.0
        p50 = np.where(some, np.minimum(service_ms + 1000.0 * wait50, cap_ms), np.nan)
        p95 = np.where(some, np.minimum(service_ms + 1000.0 * wait95, cap_ms), np.nan)
        if some.any():
            self.mean_latency_s = float(p50[some][-1]) / 1000.0
        k = len(arrivals)
        return np.column_stack((arrivals, np.zeros(k), p50, p95, busy + idle, in_flight, running * p.base_mem_mb + in_flight * p.mem_per_request_mb,
                                np.full(k, float(n)), np.full(k, float(running)), np.full(k, 1.0 / n)))

    def _advance_queues(self, sec: int, arrivals: float, n: int, running: int, due: float) -> tuple[float, ...]:
        """One second with a queue per pod, when kept-alive connections are pinned to pods (kube-proxy
        balances connections): each ready pod gets the share of the arrivals its connections carry
        (`_connection_shares`) and serves its own queue."""
        p = self.p
        mu, s_sat, variability, idle, s_free, k_free, ms_per_busy = self._pool(n, running)
        mu_i = mu / n
        ready = [r.name for r in self.replicas if r.joined_step >= 0]
        queues = self._queues
        queues = self._queues = {name: queues.get(name, 0.0) for name in ready}  # a stopped pod's queue is lost
        rate = self.rate = self.rate + RATE_SMOOTHING * (arrivals - self.rate)
        demand = rate * p.work_ms / 1000.0 / min(p.cpu_limit, 1.0)
        s_idle = s_free if demand <= k_free or demand <= 1.0 else (ms_per_busy * demand if demand < n else s_sat)
        shares = self._connection_shares(ready, arrivals, s_sat)
        served = errors = expired = backlog = in_flight = share_sq = 0.0
        lat: list[tuple[float, float, float]] = []  # (p50, p95, served) per replica
        for name in ready:
            share = shares[name]
            share_sq += share * share
            before = queues[name]
            total = before + arrivals * share
            done = total if total < mu_i else mu_i
            after = total - done
            service_ms = s_idle
            w50 = w95 = 0.0
            if after > 0.0:
                service_ms = s_sat
                bound = float(p.queue_limit)
                if after > bound:
                    errors += after - bound
                    after = bound
                limit = mu_i * p.timeout_s
                if after > limit:
                    expired += after - limit
                    after = limit
                if done > 0.0:
                    errors += done * _late_share(after / mu_i, service_ms / 1000.0, p.timeout_s, rate * share)
            else:
                w50, w95 = _random_wait_s(rate * share * service_ms / 1000.0, service_ms / 1000.0, variability)
            queues[name] = after
            served += done
            backlog += after
            in_flight += after + done * service_ms / 1000.0
            if done > 0.0:
                f95 = (0.05 * before + 0.95 * after) / mu_i if after > before else (0.95 * before + 0.05 * after) / mu_i
                lat.append((service_ms + 1000.0 * ((before + after) / 2.0 / mu_i + w50), service_ms + 1000.0 * (f95 + w95), done))
        if expired > 0.0:
            at = sec + self._expire_after_s
            self._expiring[at] = self._expiring.get(at, 0.0) + expired
        errors += due
        self.backlog = backlog
        busy = served * p.work_ms / 1000.0
        self._busy.append(busy / n)
        self._cum += busy / n
        self._pool_cum.append(self._cum)
        self._in_flight = in_flight
        mem = running * p.base_mem_mb + in_flight * p.mem_per_request_mb
        cap_ms = 1000.0 * p.timeout_s
        if served <= 0.0:
            slow = cap_ms if due > 0.0 else _NAN
            return (0.0, errors, slow, slow, busy + idle, in_flight, mem, n, running, share_sq)
        p50 = _weighted_quantile([(a, w) for a, _b, w in lat], 0.5)
        p95 = _weighted_quantile([(b, w) for _a, b, w in lat], 0.95)
        if due > 0.0:
            p50, p95 = _with_timeouts(p50, p95, due / (served + due), cap_ms)
        p50, p95 = min(cap_ms, p50), min(cap_ms, p95)
        self.mean_latency_s = p50 / 1000.0
        return (served, errors, p50, p95, busy + idle, in_flight, mem, n, running, share_sq)

    def _connection_shares(self, ready: list[str], arrivals: float, service_ms: float) -> dict[str, float]:
        """Each ready pod's share of the requests when kept-alive connections are pinned to pods.

        The client holds as many connections as requests in flight (at most ``client_connections``);
        a new one lands on a ready pod at random and stays there; one idle for ``keepalive_idle_s``
        is closed by the agent; a stopped pod's connections reconnect at random. A pod without
        connections idles while a pinned one saturates.
        """
        p = self.p
        alive = set(ready)
        lost = sum(k for name, k in self._conns.items() if name not in alive)
        self._conns = {name: k for name, k in self._conns.items() if name in alive}
        cap = p.client_connections or 10_000
        need = min(cap, max(1, math.ceil(self._in_flight + arrivals * service_ms / 1000.0)))
        open_now = sum(self._conns.values())
        for _ in range(min(cap - open_now, max(0, need - open_now) + lost) if open_now < cap else 0):
            name = self._rng.choice(ready)
            self._conns[name] = self._conns.get(name, 0) + 1
        open_now = sum(self._conns.values())
        self._excess_s = self._excess_s + 1 if open_now > need else 0
        if self._excess_s >= p.keepalive_idle_s:  # idle connections time out on the server
            for _ in range(open_now - need):
                name = self._rng.choice([k for k, c in self._conns.items() if c > 0])
                self._conns[name] -= 1
            self._excess_s = 0
        total = sum(self._conns.values()) or 1
        return {name: self._conns.get(name, 0) / total for name in ready}

    # -- what kubelet / metrics-server and the HPA see -----------------------------------------
    def cumulative_cpu_s(self, r: Replica, at: float) -> float:
        """Core-seconds replica ``r`` used from its start until ``at`` (interpolated in a second)."""
        return self.cumulative_cpu_all((r,), at)[0]

    def cumulative_cpu_all(self, replicas: Iterable[Replica], at: float) -> list[float]:
        """`cumulative_cpu_s` of each of ``replicas`` at ``at``, in their order: what one kubelet
        scrape reads (the HPA model scrapes every 15 s). The pool's cumulative CPU at ``at`` is the
        same for every replica, so it is looked up once."""
        idle = self.p.idle_cores
        pool_cum = self._pool_cum
        pool = _NAN
        last = -1
        out: list[float] = []
        for r in replicas:
            if at <= r.started_s:
                out.append(0.0)
                continue
            cum = idle * (at - r.started_s)
            if r.joined_step < 0 or at <= r.joined_step:
                out.append(cum)
                continue
            if last < 0:  # the first replica that served: the pool's CPU at ``at``, interpolated in its second
                last = len(pool_cum) - 1
                k = min(int(at), last)
                pool = pool_cum[k] + (at - k) * (self._busy[k] if k < len(self._busy) else 0.0)
            gained = pool - pool_cum[min(r.joined_step, last)]
            out.append(cum + (gained if gained > 0.0 else 0.0))  # max(0.0, gained), without the call
        return out

    def live(self) -> list[Replica]:
        return list(self.replicas)

    def busy_cores_per_ready(self) -> float:
        """CPU each ready replica used in the last second served (the pool shares work evenly)."""
        return self._busy[-1] if self._busy else 0.0

    def drain_events(self) -> list[_Event]:
        out = sorted(self.events, key=lambda e: e.t_s)
        self.events = []
        return out


def _late_share(wait_s: float, service_s: float, timeout_s: float, rate_per_replica: float) -> float:
    """The share of the requests a replica serves in a second that finish after the client gave up.

    Those that start within one service time of the timeout finish too late (the agent stops
    their work when the client leaves: an error). At the timeout itself not all are late: the
    oldest request still waiting is younger than the timeout by the gap to the next arrival
    (exponential, rate ``λ`` per replica), and it finishes in time when that gap exceeds its
    service time ``S``; a replica then answers ``λ·e^(-λS) / (1 - e^(-λS))`` requests/s in
    time, a share ``x·e^(-x) / (1 - e^(-x))`` (x = λS) of what it works through.
    """
    late = (wait_s + service_s - timeout_s) / service_s
    if late <= 0.0:
        return 0.0
    x = rate_per_replica * service_s
    in_time = x * math.exp(-x) / -math.expm1(-x) if x > 1e-9 else 1.0
    return min(late, 1.0 - in_time)


def _with_timeouts(p50: float, p95: float, timed_out: float, cap_ms: float) -> tuple[float, float]:
    """p50 and p95 of a second's completions when a share ``timed_out`` of them are requests the
    client gave up on (their latency is the timeout: the slowest of the second)."""
    if timed_out > 0.05:
        p95 = cap_ms
    if timed_out > 0.5:
        p50 = cap_ms
    return p50, p95


def _weighted_quantile(values: list[tuple[float, float]], q: float) -> float:
    """The q-quantile of values given with weights (the requests each pod served)."""
    ordered = sorted(values)
    total = sum(w for _v, w in ordered)
    acc = 0.0
    for v, w in ordered:
        acc += w
        if acc >= q * total:
            return v
    return ordered[-1][0]


def _random_wait_s(rho: float, service_s: float, variability: float) -> tuple[float, float]:
    """p50 and p95 of the queueing wait of random arrivals at utilisation ``rho``.

    Kingman's mean ``E[Wq] = ρ/(1-ρ) · v · S``; a request waits with probability ρ, and the
    wait given waiting is exponential with mean ``E[Wq]/ρ``: ``P(Wq > x) = ρ·exp(-xρ/E[Wq])``.
    """
    rho = min(rho, 0.95)
    if rho <= 0.05 or variability <= 0.0:
        return 0.0, 0.0
    mean_given_wait = service_s * variability / (1.0 - rho)
    w50 = mean_given_wait * math.log(rho / 0.5) if rho > 0.5 else 0.0
    w95 = mean_given_wait * math.log(rho / 0.05)
    return w50, w95

