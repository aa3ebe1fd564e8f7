"""The spread figures: definitions, the running window, the per-replica table, the chart."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from scalelab.telemetry import load_run
from scalelab.telemetry.spread import WindowSpread, imbalance, replica_seconds, spread_series

FIXTURES = [Path(__file__).resolve().parents[1] / "fixtures" / name for name in ("runs", "recorded")]


def test_imbalance_even_pinned_and_idle_replicas() -> None:
    assert imbalance([10, 10, 10, 10]) == (1.0, 1.0)
    busiest, jain = imbalance([40], n_ready=4)  # one of four did everything
    assert busiest == 4.0 and jain == pytest.approx(0.25)
    busiest, jain = imbalance([10, 10], n_ready=4)  # two of four shared it evenly
    assert busiest == 2.0 and jain == pytest.approx(0.5)
    assert imbalance([], n_ready=3) == (None, None)


def test_window_forgets_old_seconds_and_counts_idle_ready_replicas() -> None:
    w = WindowSpread(window_s=2)
    w.add(["a"] * 10)
    w.add(["a", "b", ""])  # "" = a refused request: no replica
    assert w.figures(["a", "b", "c"])[1] == pytest.approx((12**2) / (3 * (11**2 + 1)))
    w.add(["b"] * 2)
    w.add(["c"] * 2)
    assert w.figures(["a", "b", "c"]) == (1.5, pytest.approx(4 / 6))  # b and c busy, a idle
    assert w.figures(2) == (1.0, 1.0)


def test_replica_seconds_counts_requests_and_in_flight() -> None:
    requests = pd.DataFrame(
        {"t_s": [1.5, 2.5, 2.2], "response_ms": [1000.0, 1500.0, 200.0], "ok": [1, 1, 0], "status_code": [200, 200, 0],
         "replica": ["a", "a", ""], "error": ["", "", "timeout"]}
    )
    placement = pd.DataFrame({"t_s": [2, 2], "pod": ["a", "b"], "node": ["n", "n"], "phase": ["Running"] * 2, "ready": [1, 1], "cpu_cores": [0.4, 0.0]})
    table = replica_seconds(requests, placement).set_index(["t_s", "replica"])
    assert table.loc[(2, "a"), "requests"] == 1 and table.loc[(3, "a"), "requests"] == 1
    # a held one request during [0.5, 1.5] and one during [1.0, 2.5]: second 2 = (1, 2] holds 0.5 + 1.0
    assert table.loc[(2, "a"), "in_flight"] == pytest.approx(1.5)
    assert table.loc[(2, "b"), "requests"] == 0 and table.loc[(2, "b"), "cpu_cores"] == 0.0
    series = spread_series(table.reset_index(), window_s=10)
    assert series.loc[2, "spread_jain"] == pytest.approx(0.5)  # a and b ready, only a served


def test_recorded_runs_have_a_spread_and_a_chart(tmp_path: Path) -> None:
    from scalelab import analysis
    from scalelab.plots import spread_figure

    runs = [load_run(p) for folder in FIXTURES for p in sorted(folder.iterdir()) if (p / "manifest.json").is_file()]
    assert len(runs) >= 4
    for run in runs:
        assert len(run.replicas) and run.replicas["requests"].sum() == int(run.requests["replica"].notna().sum())
        jain = analysis.summarize(run)["spread_jain"]
        assert jain is not None and 0.1 < jain < 1.0
    assert spread_figure(runs, tmp_path / "spread.png").stat().st_size > 10_000
