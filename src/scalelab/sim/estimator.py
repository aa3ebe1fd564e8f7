"""The per-second p95 as the kit measures it: nearest rank over the few requests of one second.

A recorded run's ``p95_ms`` is the nearest-rank 95th percentile of the requests that completed in
that second (`telemetry.requests.percentile`): the ``k = ceil(0.95·n)``-th slowest of ``n``, which
for ``n <= 20`` is the slowest one. At ten requests a second that is a random draw, not the
latency distribution's 95th percentile: the k-th of ``n`` independent latencies lies at a random
level ``U`` of their distribution, ``U ~ Beta(k, n + 1 - k)`` (the k-th order statistic of ``n``
uniforms), whose median for the slowest of 11 is the 94th percentile and whose spread is wide.
Whether a second counts as over the latency objective is that draw, so a model that reports the
distribution's true 95th percentile overstates how often a steady load near the objective crosses
it (a recorded compose step: the requests' own p95 2.0 s, half the seconds' p95 below 1.6 s).

`kit_p95` replaces the simulated p95 of each second by such a draw: ``n`` is the requests that
completed in the second (served and failed), the level is drawn from its Beta distribution (from
the scenario's seed: the same run gives the same figures), and the latency at that level is read
off an exponential tail through the second's p50 and p95 (the shape of a random-arrival wait:
``P(W > x) = ρ·e^(-x/m)``, so ``x_q = p50 + (p95 - p50)·ln(0.5 / (1 - q)) / ln 10``), never above the
client's timeout. Seconds already at the timeout stay there (the timed-out requests are the slowest).
"""

from __future__ import annotations

import numpy as np

__all__ = ["kit_p95"]

_LN10 = float(np.log(10.0))


def kit_p95(p50_ms: np.ndarray, p95_ms: np.ndarray, completed: np.ndarray, ready: np.ndarray, cap_ms: float, seed: int) -> np.ndarray:
    """The nearest-rank p95 the kit would report for each second (NaN where nothing completed)."""
    p50 = np.asarray(p50_ms, dtype=np.float64)
    p95 = np.asarray(p95_ms, dtype=np.float64)
    done = np.nan_to_num(np.asarray(completed, dtype=np.float64))
    replicas = np.maximum(np.asarray(ready, dtype=np.float64), 1.0)
    # requests that waited on the same replica in the same second waited about as long: the
    # independent draws are the replicas that served in the second
    n = np.maximum(np.rint(replicas * -np.expm1(-done / replicas)), 1.0)
    k = np.ceil(0.95 * n)
    rng = np.random.default_rng([int(seed), 95])
    level = rng.beta(k, n + 1.0 - k)
    with np.errstate(divide="ignore", invalid="ignore"):
        spread = np.log(0.5 / np.maximum(1.0 - level, 1e-9)) / _LN10
        drawn = np.clip(p50 + (p95 - p50) * spread, np.minimum(p50, p95), cap_ms)
    keep = ~np.isfinite(p95) | ~np.isfinite(p50) | (p95 >= cap_ms)
    return np.where(keep, p95, drawn)
