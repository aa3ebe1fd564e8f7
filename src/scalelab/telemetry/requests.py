"""Per-second request statistics from per-request records (``requests.csv``).

Each record is one request, stamped ``t_s`` = the second (since run start) it **completed**.
A sample at ``t_s = k`` reports the requests that completed in ``(k-1, k]``: their count (rps),
latency percentiles and failures. Percentiles are nearest-rank over every completed request,
failed ones included (a timed-out request waited ``timeout`` ms: that is what its user saw).

`RequestTail` follows a ``requests.csv`` that another process (Locust) is appending to, reading
only new complete lines, so the runner can compute each second's figures as they land.
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SecondStats", "percentile", "second_stats", "bucket_of", "RequestTail", "RequestRecord"]


@dataclass(frozen=True)
class RequestRecord:
    t_s: float
    response_ms: float
    ok: bool
    replica: str = ""


@dataclass(frozen=True)
class SecondStats:
    rps: int
    p50_ms: float | None
    p95_ms: float | None
    errors: int


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile (``p`` in 0..100) of ``values``; None when empty."""
    if not values:
        return None
    if not 0 <= p <= 100:
        raise ValueError(f"percentile must be within 0..100, got {p}")
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100.0 * len(ordered)))
    return float(ordered[rank - 1])


def second_stats(records: Iterable[RequestRecord]) -> SecondStats:
    """The figures of one second from the records that completed in it."""
    latencies: list[float] = []
    errors = 0
    for rec in records:
        latencies.append(rec.response_ms)
        if not rec.ok:
            errors += 1
    return SecondStats(rps=len(latencies), p50_ms=percentile(latencies, 50), p95_ms=percentile(latencies, 95), errors=errors)


def bucket_of(t_s: float) -> int:
    """The sample second a completion time belongs to: ``(k-1, k]`` -> k."""
    return max(0, math.ceil(t_s))


class RequestTail:
    """Follows a growing requests.csv and groups its records by sample second."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._offset = 0
        self._partial = ""
        self._columns: list[str] | None = None
        self._by_second: dict[int, list[RequestRecord]] = defaultdict(list)
        self.total = 0

    def poll(self) -> int:
        """Read what was appended since the last call; returns the number of new records."""
        try:
            with self.path.open("r", encoding="utf-8", newline="") as fh:
                fh.seek(self._offset)
                chunk = fh.read()
                self._offset = fh.tell()
        except FileNotFoundError:
            return 0
        if not chunk:
            return 0
        text = self._partial + chunk
        lines = text.split("\n")
        self._partial = lines.pop()  # an incomplete last line waits for the next poll
        new = 0
        for line in lines:
            line = line.rstrip("\r")
            if not line:
                continue
            if self._columns is None:
                self._columns = line.split(",")
                continue
            rec = self._parse(line)
            if rec is not None:
                self._by_second[bucket_of(rec.t_s)].append(rec)
                new += 1
        self.total += new
        return new

    def _parse(self, line: str) -> RequestRecord | None:
        assert self._columns is not None
        # The error text is the last column and may contain commas (quoted by csv).
        head = line.split(",", len(self._columns) - 1)
        row = dict(zip(self._columns, head))
        try:
            return RequestRecord(
                t_s=float(row["t_s"]),
                response_ms=float(row["response_ms"]),
                ok=row["ok"].strip() in ("1", "True", "true"),
                replica=row.get("replica", ""),
            )
        except (KeyError, ValueError):
            return None

    def take(self, second: int) -> SecondStats:
        """Stats of the records that completed in ``(second-1, second]``, forgetting them."""
        return second_stats(self.take_records(second))

    def take_records(self, second: int) -> list[RequestRecord]:
        """The records that completed in ``(second-1, second]``, forgetting them."""
        return self._by_second.pop(second, [])

    def pending_seconds(self) -> list[int]:
        return sorted(self._by_second)
