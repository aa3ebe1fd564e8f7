"""How evenly the load balancer spread the requests over the replicas (issue 18, docs/spread.md).

Two figures per second, over the requests that completed in the trailing `WINDOW_S` seconds
and the replicas that were ready (a ready replica that got nothing counts, with zero):

- ``spread_busiest``: the busiest replica's share of the requests divided by the fair share
  ``1/n``. 1.0 is perfectly even; 2.0 means one replica did twice its share; ``n`` means it did
  everything.
- ``spread_jain``: Jain's fairness index ``(Σx)² / (n·Σx²)``: 1.0 when every replica served the
  same, ``1/n`` when one served everything; ``k/n`` when ``k`` replicas shared the load evenly
  and the others got nothing.

Random noise alone moves both a little (a replica serving Poisson(50) requests in the window
is ±14%); a balancer that pins connections moves them a lot.

`replica_seconds` turns a run's ``requests.csv`` (each request names the replica that answered)
and ``placement.csv`` (per replica and second: ready, CPU) into the per-replica table
``replicas.csv``: requests completed, average in-flight requests and CPU cores, per replica and
second. Pure functions of frames; `WindowSpread` is the running version the runner uses live.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from scalelab.telemetry.schema import REPLICA_COLUMNS

__all__ = ["WINDOW_S", "imbalance", "WindowSpread", "replica_seconds", "spread_series", "REPLICA_COLUMNS"]

#: The trailing window (seconds) the spread figures of a second are computed over.
WINDOW_S = 10


def imbalance(counts: Iterable[float], n_ready: int | None = None) -> tuple[float | None, float | None]:
    """(busiest share / fair share, Jain's index) of per-replica counts; ``n_ready`` pads with idle replicas.

    None, None when nothing was served or no replica was ready.
    """
    values = [float(c) for c in counts if c > 0]
    n = max(len(values), n_ready or 0)
    total = sum(values)
    if n == 0 or total <= 0:
        return None, None
    busiest = max(values) / (total / n)
    jain = total * total / (n * sum(v * v for v in values))
    return busiest, jain


class WindowSpread:
    """Per-replica completions over the trailing `WINDOW_S` seconds, fed one second at a time."""

    def __init__(self, window_s: int = WINDOW_S) -> None:
        self._seconds: deque[dict[str, int]] = deque(maxlen=window_s)

    def add(self, replicas: Iterable[str]) -> None:
        """The replica names of the requests that completed in this second ("" = unknown, e.g. refused)."""
        counts: dict[str, int] = {}
        for name in replicas:
            if name:
                counts[name] = counts.get(name, 0) + 1
        self._seconds.append(counts)

    def figures(self, ready: Sequence[str] | int) -> tuple[float | None, float | None]:
        """The spread over the window among the ``ready`` replicas (names, or just how many)."""
        total: dict[str, int] = {}
        for second in self._seconds:
            for name, c in second.items():
                total[name] = total.get(name, 0) + c
        if isinstance(ready, int):
            return imbalance(total.values(), ready)
        names = set(ready)
        counts = [c for name, c in total.items() if name in names] if names else list(total.values())
        return imbalance(counts, len(names))


def replica_seconds(requests: Any, placement: Any | None = None, *, last_s: int | None = None) -> Any:
    """The per-replica, per-second table (`REPLICA_COLUMNS`) of a run, as a pandas frame.

    ``requests``: the run's requests frame (t_s = completion time, response_ms, replica).
    ``placement``: the placement frame (t_s, pod, ready, cpu_cores) or None. In-flight is the
    average number of requests the replica held during the second: the overlap of every request's
    ``[t_s - response_ms, t_s]`` interval with ``(k-1, k]``, summed (exact for completed requests).
    """
    import numpy as np
    import pandas as pd

    req = requests[requests["replica"].notna() & (requests["replica"].astype(str) != "")] if len(requests) else requests
    rows: dict[tuple[int, str], list[float]] = {}
    if len(req):
        end = req["t_s"].to_numpy(dtype=float)
        start = end - req["response_ms"].to_numpy(dtype=float) / 1000.0
        names = req["replica"].astype(str).to_numpy()
        second = np.maximum(0, np.ceil(end)).astype(int)
        for k, name in zip(second.tolist(), names.tolist()):
            rows.setdefault((k, name), [0.0, 0.0])[0] += 1
        for s0, s1, name in zip(start.tolist(), end.tolist(), names.tolist()):
            for k in range(max(1, math.ceil(s0)), math.ceil(s1) + 1):
                overlap = min(s1, k) - max(s0, k - 1)
                if overlap > 0:
                    rows.setdefault((k, name), [0.0, 0.0])[1] += overlap
    cpu: dict[tuple[int, str], tuple[float | None, int | None]] = {}
    if placement is not None and len(placement):
        has_cpu = "cpu_cores" in placement.columns
        for t, pod, ready, cores in zip(
            placement["t_s"].astype(int).tolist(),
            placement["pod"].astype(str).tolist(),
            placement["ready"].tolist(),
            placement["cpu_cores"].tolist() if has_cpu else [None] * len(placement),
        ):
            cpu[(t, pod)] = (None if cores is None or cores != cores else float(cores), None if ready != ready else int(bool(ready)))
    keys = set(rows) | set(cpu)
    if last_s is not None:
        keys = {k for k in keys if k[0] <= last_s}
    out = []
    for k, name in sorted(keys):
        served, held = rows.get((k, name), (0.0, 0.0))
        cores, ready = cpu.get((k, name), (None, None))
        out.append((k, name, int(served), round(held, 4), cores, ready))
    frame = pd.DataFrame(out, columns=list(REPLICA_COLUMNS))
    frame["ready"] = frame["ready"].astype("Int64")
    return frame


def spread_series(per_replica: Any, ready_counts: Mapping[int, int] | None = None, *, window_s: int = WINDOW_S) -> Any:
    """Per second: ``spread_busiest`` and ``spread_jain`` over the trailing window, as a frame indexed by t_s.

    The replicas counted in a second are those ready in it (``ready`` = 1 in the table), or, when
    readiness was not recorded, the ``ready_counts`` of the samples (idle replicas padded with zeros).
    """
    import pandas as pd

    if per_replica is None or not len(per_replica):
        return pd.DataFrame(columns=["spread_busiest", "spread_jain"])
    counts = per_replica.pivot_table(index="t_s", columns="replica", values="requests", aggfunc="sum", fill_value=0)
    last = int(counts.index.max())
    full = counts.reindex(range(0, last + 1), fill_value=0)
    rolling = full.rolling(window_s, min_periods=1).sum()
    has_ready = per_replica["ready"].notna().any()
    ready_sets: dict[int, set[str]] = {}
    if has_ready:
        marked = per_replica[per_replica["ready"].fillna(0).astype(int) == 1]
        for t, name in zip(marked["t_s"].tolist(), marked["replica"].tolist()):
            ready_sets.setdefault(int(t), set()).add(str(name))
    out = []
    for t, row in zip(rolling.index.tolist(), rolling.to_numpy().tolist()):
        names = rolling.columns.tolist()
        if has_ready and t in ready_sets:
            chosen = [c for name, c in zip(names, row) if name in ready_sets[t]]
            figs = imbalance(chosen, len(ready_sets[t]))
        else:
            figs = imbalance(row, (ready_counts or {}).get(t))
        out.append((t, *figs))
    return pd.DataFrame(out, columns=["t_s", "spread_busiest", "spread_jain"]).set_index("t_s")
