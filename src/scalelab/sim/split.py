"""A queue per replica while requests wait, for balancers that pick a replica at random per request.

nginx on compose (one of Docker's rotated addresses per request) and a Kubernetes Service with a
new connection per request (kube-proxy picks an endpoint at random for each connection) choose a
replica for every request when it arrives, and never move it afterwards: each replica works
through its own first-in-first-out queue. While nobody waits, that is the random-arrival wait of
`service` (Kingman's formula per replica). Once requests pile up it is not one pooled queue:

- by chance some replicas get more of a spike than others, so the first of them reaches the
  client's timeout seconds before a pooled queue of the same total would;
- when new replicas become ready, the balancer sends them their share of the *new* requests, but
  what waits on the old replicas stays there: an old replica drains only at its own speed minus
  its share of the arrivals, for tens of seconds, while the new ones answer at once.

The recorded runs show both (docs/fidelity.md). The model: while any replica has work waiting,
each second's arrivals are split over the ready replicas at random (multinomial, equal shares);
each replica serves its own FIFO queue at its CPU limit, or less when the host cannot run every
busy replica at its limit (the busy ones then share what the idle ones leave, equal shares up to
their limits: CFS with equal weights); a request still waiting at the end of the second in which
its client gives up is abandoned (an error in that second; its replica drops it in the next one); a
replica reaches the requests of that second until then, and one it starts too close to the timeout
finishes too late (`service._late_share`, with the rate at which the requests at the head of its
queue came: the gap to the next of them is what is left before the timeout). Which replica gets
how much is chance, so `SplitQueues` keeps ``REALIZATIONS`` independent random splits side by
side (numpy arrays, one row per split) and reports their expectation: the mean of the requests
served, failed and waiting, and the median over the splits of each second's p50 and p95. When no
replica in any split has more than ``EXIT_WAIT_S`` of work queued, the service goes back to its
one-line-per-second pooled model.

Replicas that differ (``sim.replica_speed_cv`` > 0): each replica serves at its own rate, a speed
factor times the mean one (its CPU per request at the quota divided by it). Which replica is slow
is not known in advance, so a replica takes another speed in each split: evenly spaced quantiles
of a lognormal with that coefficient of variation and mean 1 (`speed_levels`), in an order drawn
from the seed and its name. Over the splits every replica's mean speed is 1, so the pooled model's
capacity (n replicas at the mean rate) stays the expectation of the split one's.
"""

from __future__ import annotations

import math
import zlib
from collections import deque

import numpy as np

__all__ = ["SplitQueues", "REALIZATIONS", "EXIT_WAIT_S", "speed_levels"]

#: Independent random splits kept side by side (the standard error of the mean errors of a
#: classroom spike is then about a request).
REALIZATIONS = 32
#: Back to the pooled model when no replica of any split has more than this much work queued.
EXIT_WAIT_S = 0.5
#: ...and the replicas' load (arrival rate × CPU per request over the limit) is below this.
EXIT_LOAD = 0.8
#: CPU an abandoned request costs its replica (accept, read, notice the client left, drop it):
#: in the recorded compose spike and step, while every replica had work queued, each timeout cost
#: its replica 0.10-0.14 s at 0.125 core beyond the answered requests' CPU, 12-17 ms of CPU.
ABANDON_CPU_S = 0.0125
#: Kingman's (ca² + cs²) / 2 for random arrivals (ca² = 1) and a fixed CPU cost (cs² = 0).
_VARIABILITY = 0.5
_FRACTIONS = np.array([0.05, 0.5, 0.95])[:, None, None]


class SplitQueues:
    """Per-replica FIFO queues of the ready replicas, ``REALIZATIONS`` random splits at once."""

    def __init__(self, timeout_s: float, queue_limit: int, *, seed: int = 0x5CA1E, realizations: int = REALIZATIONS,
                 speed_cv: float = 0.0) -> None:
        self.timeout_s = float(timeout_s)
        self.queue_limit = float(queue_limit)
        self.r = int(realizations)
        self._seed = int(seed)
        self._rng = np.random.default_rng(seed)
        self.speed_cv = float(speed_cv)
        self._levels = speed_levels(self.speed_cv, self.r)
        #: each replica's speed in each split (its service rate over the mean's), None when they are equal
        self.factors: np.ndarray | None = None if self._levels is None else np.ones((self.r, 0))
        self._rows = np.arange(self.r)
        # cumulative admitted per replica at the end of the last seconds (the FIFO's arrival times)
        self._history: deque[np.ndarray] = deque(maxlen=int(math.ceil(self.timeout_s)) + 2)
        self._timeout_whole = max(1, round(self.timeout_s))
        self._sec_last = -1  # the second whose end the last history entry holds
        self.active = False
        self.names: list[str] = []
        self._clear()

    def reset(self) -> None:
        """Forget every queue (no replica left to serve them)."""
        self.active = False
        self._clear()

    def _clear(self) -> None:
        n = len(self.names)
        self.backlog = np.zeros((self.r, n))
        self._admitted = np.zeros((self.r, n))
        self._departed = np.zeros((self.r, n))
        self._dropping = np.zeros((self.r, n))  # requests abandoned in the last second, dropped in this one
        self._history.clear()

    @property
    def waiting(self) -> float:
        """Requests waiting, the mean over the splits."""
        return float(self.backlog.sum()) / self.r if self.active else 0.0

    def sync(self, names: list[str]) -> None:
        """Follow the ready replicas: a new one starts with an empty queue; a stopped one's queue is
        dropped (it finishes what it holds during its grace period: not an error)."""
        if names == self.names:
            return
        where = {name: i for i, name in enumerate(self.names)}
        keep = [where.get(name, -1) for name in names]

        def remap(a: np.ndarray) -> np.ndarray:
            out = np.zeros((self.r, len(names)))
            for j, k in enumerate(keep):
                if k >= 0:
                    out[:, j] = a[:, k]
            return out

        self.backlog, self._admitted, self._departed, self._dropping = (remap(self.backlog), remap(self._admitted), remap(self._departed),
                                                                        remap(self._dropping))
        if self.factors is not None:  # a replica keeps its speeds; a new one draws its own
            speeds = self.factors
            self.factors = np.stack([speeds[:, k] if k >= 0 else self._speed_of(name) for name, k in zip(names, keep)], axis=1) \
                if names else np.ones((self.r, 0))
        old = list(self._history)
        self._history.clear()
        self._history.extend(remap(h) for h in old)
        self.names = list(names)

    def step(self, sec: int, arrivals: float, rate_per_replica: float, host_cores: float, limit_cores: float,
             work_s: float, cpu_s: float | None = None) -> tuple[float, float, float, float, float]:
        """Serve second ``sec``: returns (served, failed, p50 ms, p95 ms (NaN when nothing was
        served), busy core-seconds: the answered requests' and the abandoned ones'), each the
        expectation over the splits."""
        r, n, timeout = self.r, len(self.names), self.timeout_s
        if not self.active:  # nobody waited before this second: the queues start empty
            self.active = True
            self._history.append(np.zeros((r, n)))
            self._sec_last = sec - 1
        before = self.backlog
        a = self._rng.multinomial(max(0, round(arrivals)), np.full(n, 1.0 / n), size=r).astype(np.float64)
        total = before + a
        # CPU per request of each replica at its quota: a slower one (speed factor below 1) needs more
        work = work_s if self.factors is None else work_s / self.factors
        speed = self._speeds(np.minimum(total * work, limit_cores), host_cores, limit_cores)
        mu = speed / work  # requests/s each replica works through while it has work
        # each request abandoned last second costs its replica CPU it cannot spend on the others now:
        # accepting and reading it, noticing the client left, dropping it (`ABANDON_CPU_S`), at its speed
        dropping = self._dropping
        served = np.minimum(total, mu * np.maximum(0.0, 1.0 - dropping * ABANDON_CPU_S / speed))
        departed = self._departed
        self._departed = departed + served
        # what came a timeout before the end of this second and is still waiting is abandoned: its
        # client gave up during the second (an error in it), and the replica drops it when it gets
        # there. Until then the replica may reach it: the late share below counts those it starts too late
        expired = np.maximum(self._admitted_by(sec + 1 - self._timeout_whole) - self._departed, 0.0)
        self._departed = self._departed + expired
        self._dropping = expired
        after = total - served - expired
        refused = np.maximum(after - self.queue_limit, 0.0)  # the accept queue is full: refused at once
        after -= refused
        self._admitted = self._admitted + a - refused
        service_s = work / speed
        waits, head_rate = self._fifo_waits(sec, departed, served)
        calm = (before <= 1e-9) & (after <= 1e-9)
        w50, w95 = _kingman(rate_per_replica * service_s, service_s)
        w50 = np.where(calm, w50, waits[1])
        w95 = np.where(calm, w95, np.maximum(waits[0], waits[2]))
        # the oldest request still waiting is younger than the timeout by the gap to the next arrival
        # at the head of the queue: the rate at which the requests served now came (the FIFO knows it)
        head_rate = np.where(np.isfinite(head_rate), head_rate, rate_per_replica)
        late = np.where(calm, 0.0, served * _late_share(waits[1], service_s, timeout, head_rate))
        self._history.append(self._admitted.copy())
        self._sec_last = sec
        self.backlog = after
        p50, p95 = _row_quantiles(service_s + w50, served, 0.5), _row_quantiles(service_s + w95, served, 0.95)
        scale = 1.0 / r
        out_served = float(served.sum()) * scale
        errors = float((refused + late + expired).sum()) * scale
        p50_ms, p95_ms = 1000.0 * _median(p50), 1000.0 * _median(p95)
        if float((after / mu).max(initial=0.0)) < EXIT_WAIT_S and rate_per_replica * work_s < EXIT_LOAD * limit_cores and not expired.any():
            self.active = False  # nobody waits for long (and nothing is left to drop): the pooled model takes over
            self._clear()
        # CPU: a replica with requests waiting uses its whole share, one keeping up what its requests cost
        per_request = work if cpu_s is None else (cpu_s if self.factors is None else cpu_s / self.factors)
        busy = np.where(after > 0.0, served * work, served * per_request) + np.minimum(dropping * ABANDON_CPU_S, speed)
        return out_served, errors, p50_ms, p95_ms, float(busy.sum()) * scale

    def _speed_of(self, name: str) -> np.ndarray:
        """A new replica's speed in each split: the levels (`speed_levels`) in an order drawn from
        the seed and its name, so each split meets another mix of fast and slow replicas and the same
        scenario gives the same mixes."""
        assert self._levels is not None
        return np.random.default_rng([self._seed, zlib.crc32(name.encode())]).permutation(self._levels)

    def _admitted_by(self, t: int) -> np.ndarray:
        """Cumulative admitted per replica at time ``t`` (the end of second ``t - 1``); zero before the history."""
        back = self._sec_last - (t - 1)  # how many seconds before the last recorded end
        if back < 0:
            return self._admitted
        if back >= len(self._history):
            return np.zeros_like(self._admitted)
        return self._history[len(self._history) - 1 - back]

    @staticmethod
    def _speeds(demand: np.ndarray, host: float, limit: float) -> np.ndarray:
        """Cores each replica runs at: its limit while the host has enough for every replica's
        demand; else the busy ones share what the others leave, equal shares (water-filling)."""
        if not math.isfinite(host) or float(demand.sum(axis=1).max(initial=0.0)) <= host:
            return np.full(demand.shape, limit)
        n = demand.shape[1]
        d = np.sort(demand, axis=1)
        spent = np.cumsum(d, axis=1) - d  # what the lighter replicas take
        level = (host - spent) / (n - np.arange(n))
        fits = level <= d
        first = np.argmax(fits, axis=1)
        share = np.where(fits.any(axis=1), level[np.arange(len(d)), first], np.inf)
        return np.clip(np.minimum(limit, share)[:, None], 1e-3, None) * np.ones_like(demand)

    def _fifo_waits(self, sec: int, start: np.ndarray, served: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Waits (s) of the requests at 5%, 50% and 95% of those each replica serves in second ``sec``
        (the three along the first axis): their departure (spread over the second) minus their
        arrival (read off the admitted counts of the last seconds, spread over each second); and the
        rate (requests/s) at which the median one's second brought requests to the replica (NaN when
        that second is older than the history)."""
        ends = np.stack([*self._history, self._admitted])  # cumulative admitted at the end of each second
        m = len(ends)
        pos = start[None] + _FRACTIONS * served[None]  # (3, r, n)
        k = np.minimum((ends[None] < pos[:, None] - 1e-12).sum(axis=1), m - 1)
        rows, cols = np.indices(start.shape)
        upper = ends[k, rows, cols]
        lower = np.where(k > 0, ends[np.maximum(k - 1, 0), rows, cols], upper)
        with np.errstate(divide="ignore", invalid="ignore"):
            frac = np.where(upper > lower, (pos - lower) / (upper - lower), 0.5)
        arrival = (sec - (m - 1) + k) + np.clip(frac, 0.0, 1.0)
        head_rate = np.where(k[1] > 0, upper[1] - lower[1], np.nan)
        return np.maximum(0.0, sec + _FRACTIONS - arrival), head_rate


def speed_levels(cv: float, realizations: int) -> np.ndarray | None:
    """The speeds a replica takes in the ``realizations`` splits: evenly spaced quantiles of a
    lognormal with mean 1 and coefficient of variation ``cv``, scaled to a mean of exactly 1 (so the
    replicas' expected capacity, the pooled model's, does not change); None for ``cv`` = 0."""
    if cv <= 0.0:
        return None
    from statistics import NormalDist  # only here: its import costs `scalelab sim day` ~10 ms

    sigma = math.sqrt(math.log1p(cv * cv))
    normal = NormalDist()
    levels = np.exp(np.array([sigma * normal.inv_cdf((k + 0.5) / realizations) for k in range(realizations)]))
    return np.asarray(levels / levels.mean())


def _kingman(rho: np.ndarray | float, service_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """p50 and p95 of the random-arrival wait (s) at utilisation ``rho`` (`service._random_wait_s`)."""
    rho = np.minimum(np.broadcast_to(rho, np.shape(service_s)), 0.95)
    mean_given_wait = service_s * _VARIABILITY / (1.0 - rho)
    with np.errstate(divide="ignore", invalid="ignore"):
        w95 = np.where(rho > 0.05, mean_given_wait * np.log(rho / 0.05), 0.0)
        w50 = np.where(rho > 0.5, mean_given_wait * np.log(rho / 0.5), 0.0)
    return w50, w95


def _late_share(wait_s: np.ndarray, service_s: np.ndarray, timeout_s: float, rate: np.ndarray | float) -> np.ndarray:
    """`service._late_share` on arrays."""
    late = (wait_s + service_s - timeout_s) / service_s
    x = rate * service_s
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        in_time = np.where(x > 1e-9, x * np.exp(-x) / -np.expm1(-x), 1.0)
    return np.where(late > 0.0, np.minimum(late, 1.0 - in_time), 0.0)


def _row_quantiles(values: np.ndarray, weights: np.ndarray, q: float) -> np.ndarray:
    """The weighted q-quantile of each row (NaN for a row without weight)."""
    r, n = values.shape
    if n == 0:
        return np.full(r, np.nan)
    rows = np.arange(r)[:, None]
    order = np.argsort(values, axis=1)
    cw = np.cumsum(weights[rows, order], axis=1)
    total = cw[:, -1]
    idx = np.minimum((cw < q * total[:, None] - 1e-12).sum(axis=1), n - 1)
    out = values[rows[:, 0], order[rows[:, 0], idx]]
    return np.where(total > 0.0, out, np.nan)


def _median(values: np.ndarray) -> float:
    """The median of the finite values, NaN without any."""
    finite = values[np.isfinite(values)]
    if not len(finite):
        return math.nan
    half = len(finite) // 2
    part = np.partition(finite, half)
    return float(part[half]) if len(finite) % 2 else float(0.5 * (part[half] + np.max(part[:half])))
