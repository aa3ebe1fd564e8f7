"""Per-second request statistics: nearest-rank percentiles, buckets, and tailing a growing CSV."""

from __future__ import annotations

from pathlib import Path

import pytest

from scalelab.telemetry.requests import RequestRecord, RequestTail, bucket_of, percentile, second_stats
from scalelab.telemetry.schema import REQUEST_COLUMNS


def test_percentile_nearest_rank() -> None:
    values = list(range(1, 101))  # 1..100
    assert percentile(values, 50) == 50
    assert percentile(values, 95) == 95
    assert percentile(values, 100) == 100
    assert percentile([7.0], 95) == 7.0
    assert percentile([3, 1, 2], 50) == 2  # unsorted input
    assert percentile([10, 20, 30, 40], 95) == 40
    assert percentile([], 50) is None
    with pytest.raises(ValueError):
        percentile([1], 101)


def test_second_stats_counts_failures_in_latency() -> None:
    recs = [RequestRecord(t_s=0.5, response_ms=ms, ok=True) for ms in (100, 110, 120, 130)]
    recs.append(RequestRecord(t_s=0.9, response_ms=10000, ok=False))  # a timeout: its user waited 10 s
    stats = second_stats(recs)
    assert stats.rps == 5
    assert stats.errors == 1
    assert stats.p50_ms == 120
    assert stats.p95_ms == 10000
    empty = second_stats([])
    assert (empty.rps, empty.p50_ms, empty.p95_ms, empty.errors) == (0, None, None, 0)


@pytest.mark.parametrize(("t", "k"), [(0.0, 0), (0.01, 1), (1.0, 1), (1.0001, 2), (59.5, 60), (-0.2, 0)])
def test_bucket_is_the_second_that_ends_after_completion(t: float, k: int) -> None:
    assert bucket_of(t) == k


def test_tail_reads_only_complete_lines(tmp_path: Path) -> None:
    path = tmp_path / "requests.csv"
    tail = RequestTail(path)
    assert tail.poll() == 0  # no file yet
    with path.open("w") as fh:
        fh.write(",".join(REQUEST_COLUMNS) + "\n")
        fh.write("0.4,100,1,200,abc,\n1.2,200,1,200,def,\n1.7,300,0,0,,ConnectionRefused: x; y\n2.1,40")
    assert tail.poll() == 3
    with path.open("a") as fh:
        fh.write("0,1,200,abc,\n")  # completes the partial line
    assert tail.poll() == 1
    assert tail.pending_seconds() == [1, 2, 3]
    s2 = tail.take(2)
    assert (s2.rps, s2.errors, s2.p50_ms, s2.p95_ms) == (2, 1, 200, 300)
    assert tail.take(2).rps == 0  # taken once
    assert tail.take(3).p95_ms == 400
    assert tail.total == 4


def test_tail_of_error_with_commas(tmp_path: Path) -> None:
    path = tmp_path / "requests.csv"
    path.write_text(",".join(REQUEST_COLUMNS) + "\n" + '0.5,10000,0,0,,"Timeout: read, timed out"\n')
    tail = RequestTail(path)
    assert tail.poll() == 1
    assert tail.take(1).errors == 1
