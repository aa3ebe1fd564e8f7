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
_QUANTILES = np.array([0.5, 0.95])[:, None]  # of the latencies: p50 and p95


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
        # cumulative admitted per replica at the end of the last seconds (the FIFO's arrival times),
        # oldest first: ``_ends[_first : _first + _kept]``, at most ``_depth`` of them. The buffer has
        # room after them for the second being served, so `_fifo_waits` reads them and it as one array
        # instead of stacking them every second; when they reach its end they move to its start
        self._depth = int(math.ceil(self.timeout_s)) + 2
        self._ends = np.zeros((2 * self._depth + 1, self.r, 0))
        self._first = self._kept = 0
        self._timeout_whole = max(1, round(self.timeout_s))
        self._sec_last = -1  # the second whose end the last history entry holds
        self.active = False
        self.names: list[str] = []
        self._for_shape()
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
        self._first = self._kept = 0

    def _for_shape(self) -> None:
        """What `step` needs every second for these replicas, made once when they change."""
        n = len(self.names)
        self._shares = np.full(n, 1.0 / n) if n else np.zeros(0)  # the balancer's equal chances
        self._cells = np.arange(self.r * n).reshape(self.r, n)  # each (split, replica)'s place in one second's flattened array

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

        def remap(a: np.ndarray) -> np.ndarray:  # the replicas along the last axis
            out = np.zeros((*a.shape[:-1], len(names)))
            for j, k in enumerate(keep):
                if k >= 0:
                    out[..., j] = a[..., k]
            return out

        self.backlog, self._admitted, self._departed, self._dropping = (remap(self.backlog), remap(self._admitted), remap(self._departed),
                                                                        remap(self._dropping))
        if self.factors is not None:  # a replica keeps its speeds; a new one draws its own
            speeds = self.factors
            self.factors = np.stack([speeds[:, k] if k >= 0 else self._speed_of(name) for name, k in zip(names, keep)], axis=1) \
                if names else np.ones((self.r, 0))
        self._ends = remap(self._ends)
        self.names = list(names)
        self._for_shape()

    def step(self, sec: int, arrivals: float, rate_per_replica: float, host_cores: float, limit_cores: float,
             work_s: float, cpu_s: float | None = None) -> tuple[float, float, float, float, float]:
        """Serve second ``sec``: returns (served, failed, p50 ms, p95 ms (NaN when nothing was
        served), busy core-seconds: the answered requests' and the abandoned ones'), each the
        expectation over the splits."""
        r, n, timeout = self.r, len(self.names), self.timeout_s
        if not self.active:  # nobody waited before this second: the queues start empty
            self.active = True
            self._stage(0.0)
            self._keep()
            self._sec_last = sec - 1
        before = self.backlog
        a = self._rng.multinomial(max(0, round(arrivals)), self._shares, size=r).astype(np.float64)
        total = before + a
        # CPU per request of each replica at its quota: a slower one (speed factor below 1) needs more
        work = work_s if self.factors is None else work_s / self.factors
        speed = self._speeds(np.minimum(total * work, limit_cores), host_cores, limit_cores)
        mu = speed / work  # requests/s each replica works through while it has work
        # each request abandoned last second costs its replica CPU it cannot spend on the others now:
        # accepting and reading it, noticing the client left, dropping it (`ABANDON_CPU_S`), at its speed
        drop_cpu = self._dropping * ABANDON_CPU_S
        served = np.minimum(total, mu * np.maximum(0.0, 1.0 - drop_cpu / speed))
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
        self._stage(self._admitted)
        service_s = work / speed
        # the waits of the requests at the median (0) and at the 95th percentile (1): a replica that
        # had nothing waiting before and has nothing after ("calm") has the random-arrival wait, the
        # others the FIFO's. Each is worked out only when some replica needs it (they are most of a
        # second's cost)
        calm = (before <= 1e-9) & (after <= 1e-9)
        calm_count = np.count_nonzero(calm)
        waits = np.empty((2, r, n))
        if calm_count == calm.size:
            waits[0], waits[1] = _kingman(rate_per_replica * service_s, service_s)
            late = np.zeros((r, n))  # nobody waits: nobody is late
        else:
            fifo, head_rate = self._fifo_waits(sec, departed, served, rate_per_replica)
            waits[0] = fifo[1]
            np.maximum(fifo[0], fifo[2], out=waits[1])
            if calm_count:
                w50, w95 = _kingman(rate_per_replica * service_s, service_s)
                np.copyto(waits[0], w50, where=calm)
                np.copyto(waits[1], w95, where=calm)
            # the oldest request still waiting is younger than the timeout by the gap to the next arrival
            # at the head of the queue: the rate at which the requests served now came (the FIFO knows it)
            late = np.where(calm, 0.0, served * _late_share(fifo[1], service_s, timeout, head_rate))
        self._keep()
        self._sec_last = sec
        self.backlog = after
        p50, p95 = _medians(_row_quantiles(service_s + waits, served, _QUANTILES))
        scale = 1.0 / r
        out_served = float(served.sum()) * scale
        errors = float((refused + late + expired).sum()) * scale
        p50_ms, p95_ms = 1000.0 * p50, 1000.0 * p95
        if rate_per_replica * work_s < EXIT_LOAD * limit_cores and not np.count_nonzero(expired) and float((after / mu).max(initial=0.0)) < EXIT_WAIT_S:
            self.active = False  # nobody waits for long (and nothing is left to drop): the pooled model takes over
            self._clear()
        # CPU: a replica with requests waiting uses its whole share, one keeping up what its requests cost
        per_request = work if cpu_s is None else (cpu_s if self.factors is None else cpu_s / self.factors)
        busy = np.where(after > 0.0, served * work, served * per_request) + np.minimum(drop_cpu, speed)
        return out_served, errors, p50_ms, p95_ms, float(busy.sum()) * scale

    def _speed_of(self, name: str) -> np.ndarray:
        """A new replica's speed in each split: the levels (`speed_levels`) in an order drawn from
        the seed and its name, so each split meets another mix of fast and slow replicas and the same
        scenario gives the same mixes."""
        assert self._levels is not None
        return np.random.default_rng([self._seed, zlib.crc32(name.encode())]).permutation(self._levels)

    def _stage(self, admitted: np.ndarray | float) -> None:
        """Write the cumulative admitted at the end of the second being served after the kept ones
        (`_fifo_waits` reads it with them, `_keep` keeps it)."""
        end = self._first + self._kept
        if end == len(self._ends):  # no room after them: move them to the start (at most half the buffer: no overlap)
            self._ends[: self._kept] = self._ends[self._first : end]
            self._first, end = 0, self._kept
        self._ends[end] = admitted

    def _keep(self) -> None:
        """Keep the staged second in the history, dropping the oldest beyond ``_depth``."""
        if self._kept == self._depth:
            self._first += 1
        else:
            self._kept += 1

    def _admitted_by(self, t: int) -> np.ndarray:
        """Cumulative admitted per replica at time ``t`` (the end of second ``t - 1``); zero before the history."""
        back = self._sec_last - (t - 1)  # how many seconds before the last recorded end
        if back < 0:
            return self._admitted
        if back >= self._kept:
            return np.zeros(self._admitted.shape)
        return self._ends[self._first + self._kept - 1 - back]

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

    def _fifo_waits(self, sec: int, start: np.ndarray, served: np.ndarray, rate: float) -> tuple[np.ndarray, np.ndarray]:
        """Waits (s) of the requests at 5%, 50% and 95% of those each replica serves in second ``sec``
        (the three along the first axis): their departure (spread over the second) minus their
        arrival (read off the admitted counts of the last seconds, spread over each second); and the
        rate (requests/s) at which the median one's second brought requests to the replica (``rate``
        when that second is older than the history)."""
        ends = self._ends[self._first : self._first + self._kept + 1]  # cumulative admitted at the end of each second, ``sec`` last
        m, cells = len(ends), self._cells
        pos = start + _FRACTIONS * served  # (3, r, n)
        k = np.minimum((ends[:, None] < pos - 1e-12).sum(axis=0), m - 1)  # the second each came in
        # the admitted counts at the end of that second and of the one before (the first one's own
        # end for the first), picked from the flattened seconds: ends[k, split, replica]
        flat, at = ends.reshape(-1), k * cells.size + cells
        upper = flat[at]
        lower = flat[np.maximum(at - cells.size, cells)]
        # where in its second it came; a second that brought nothing: its middle (no division by zero)
        some = upper > lower
        frac = np.where(some, pos - lower, 0.5) / np.where(some, upper - lower, 1.0)
        arrival = (sec - (m - 1) + k) + np.minimum(np.maximum(frac, 0.0), 1.0)
        head_rate = np.where(k[1] > 0, upper[1] - lower[1], rate)
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
    if np.shape(rho) != np.shape(service_s):
        rho = np.broadcast_to(rho, np.shape(service_s))
    rho = np.minimum(rho, 0.95)
    mean_given_wait = service_s * _VARIABILITY / (1.0 - rho)
    # the logarithm only of ratios above 1 (an idle replica's log(0) would warn; its wait is 0 anyway)
    w95 = np.where(rho > 0.05, mean_given_wait * np.log(np.maximum(rho, 0.05) / 0.05), 0.0)
    w50 = np.where(rho > 0.5, mean_given_wait * np.log(np.maximum(rho, 0.5) / 0.5), 0.0)
    return w50, w95


def _late_share(wait_s: np.ndarray, service_s: np.ndarray, timeout_s: float, rate: np.ndarray | float) -> np.ndarray:
    """`service._late_share` on arrays."""
    late = (wait_s + service_s - timeout_s) / service_s
    over = late > 0.0
    if not np.count_nonzero(over):  # every replica starts them early enough (most seconds)
        return np.zeros(late.shape)
    x = rate * service_s
    some = x > 1e-9
    x = np.where(some, x, 1.0)  # the others' share is 1 (without computing 0/0)
    in_time = np.where(some, x * np.exp(-x) / -np.expm1(-x), 1.0)
    return np.where(over, np.minimum(late, 1.0 - in_time), 0.0)


def _row_quantiles(values: np.ndarray, weights: np.ndarray, q: np.ndarray) -> np.ndarray:
    """The weighted ``q[i]``-quantile of each row of ``values[i]`` (weights: ``weights``' rows; NaN
    for a row without weight). ``values`` holds several sets of rows, so one sort serves them all."""
    s, r, n = values.shape
    if n == 0:
        return np.full((s, r), np.nan)
    starts = np.arange(0, s * r * n, n).reshape(s, r)  # where each row begins in the flattened arrays
    order = np.argsort(values, axis=2)  # row by row, as for each set on its own
    cw = np.cumsum(weights.reshape(-1)[order + starts[0, :, None]], axis=2)
    total = cw[:, :, -1]
    idx = np.minimum((cw < (q * total - 1e-12)[:, :, None]).sum(axis=2), n - 1)
    out = values.reshape(-1)[order.reshape(-1)[starts + idx] + starts]
    return np.where(total > 0.0, out, np.nan)


def _medians(values: np.ndarray) -> list[float]:
    """`_median` of each row."""
    r = values.shape[1]
    if not r or not np.isfinite(values).all():
        return [_median(row) for row in values]
    # every split served someone (most seconds): one sort for all rows; the middle two of the sorted
    # row are the values `_median` picks (``part[half]`` and the largest below it)
    ordered = np.sort(values, axis=1)
    half = r // 2
    return (ordered[:, half] if r % 2 else 0.5 * (ordered[:, half] + ordered[:, half - 1])).tolist()


def _median(values: np.ndarray) -> float:
    """The median of the finite values, NaN without any."""
    finite = values[np.isfinite(values)]
    if not len(finite):
        return math.nan
    half = len(finite) // 2
    part = np.partition(finite, half)
    return float(part[half]) if len(finite) % 2 else float(0.5 * (part[half] + np.max(part[:half])))
