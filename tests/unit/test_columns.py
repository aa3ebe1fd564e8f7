"""The simulator's column writer: the same bytes as the row writer, and the same frame read back."""

from __future__ import annotations

import csv
import io

import numpy as np
import pandas as pd
import pytest

from scalelab.sim import prepare_scenario, simulate_runs
from scalelab.telemetry import load_run
from scalelab.telemetry.columns import format_column, round4, write_columns
from scalelab.telemetry.store import _cell


def test_floats_print_as_python_rounds_them() -> None:
    rng = np.random.default_rng(3)
    values = np.concatenate([rng.uniform(0, 2000, 5000), [2.675, 432.09675, 0.00005, 0.00004, 3.0, 0.0, -1.23456, np.nan]])
    cells = format_column(values, len(values))
    expected = ["" if v != v else str(round(v, 4)) for v in values.tolist()]
    assert cells == expected
    assert np.array_equal(round4(values), np.array([round(v, 4) for v in values.tolist()]), equal_nan=True)


@pytest.mark.parametrize("case", ["levels", "levels-with-gaps", "minus-zero", "wide", "many", "all-missing"])
def test_every_path_prints_each_value_as_python_does(case: str) -> None:
    """Few distinct values are printed once each (counted in a table, or sorted when their range is
    too wide for one), many one by one: the cells are the same whichever path a column takes."""
    rng = np.random.default_rng(5)
    n = 4000
    values = {
        "levels": rng.choice([0.25, 1.5, 3.0, 12.3456], n),
        "levels-with-gaps": np.where(rng.random(n) < 0.2, np.nan, rng.choice([0.1, 2.0, 7.77], n)),
        "minus-zero": rng.choice([-0.0, 0.0, 0.5], n),
        "wide": rng.choice([0.0001, 5e6, 123456.789], n),
        "many": rng.uniform(0, 3, n),
        "all-missing": np.full(n, np.nan),
    }[case]
    assert format_column(values, n) == ["" if v != v else str(round(v, 4)) for v in values.tolist()]
    whole = np.where(np.isnan(values), np.nan, np.floor(np.nan_to_num(values)))
    assert format_column(whole, n, integer=True) == ["" if v != v else str(int(v)) for v in whole.tolist()]


def test_columns_write_what_the_row_writer_writes() -> None:
    columns = ("t_s", "name", "x", "n", "gap")
    data = {"t_s": np.arange(4), "name": "a", "x": np.array([0.1, None, 2.5, 1e-7], dtype=float), "gap": np.array([np.nan, 5, 6, np.nan])}
    fast = io.StringIO(newline="")
    write_columns(fast, columns, data, 4, integers=("gap",))
    slow = io.StringIO(newline="")
    writer = csv.DictWriter(slow, fieldnames=columns)
    for i in range(4):
        gap = data["gap"][i]
        writer.writerow({"t_s": i, "name": "a", "x": _cell(float(data["x"][i])), "n": "", "gap": "" if gap != gap else int(gap)})
    assert fast.getvalue() == slow.getvalue()


def test_a_cell_that_needs_quoting_is_refused() -> None:
    with pytest.raises(ValueError, match="quoting"):
        write_columns(io.StringIO(), ("a",), {"a": "x,y"}, 2)


def test_simulated_runs_equal_what_load_run_reads(tmp_path) -> None:
    sc = prepare_scenario("classroom-spike", seed=7)
    for run in simulate_runs(sc, tmp_path, seed=7):
        again = load_run(run.path)
        pd.testing.assert_frame_equal(run.samples, again.samples)
        pd.testing.assert_frame_equal(run.events, again.events)
        assert run.manifest == again.manifest


def test_runs_simulated_in_forked_workers_equal_what_load_run_reads(tmp_path) -> None:
    sc = prepare_scenario("classroom-spike", seed=7)
    runs = simulate_runs(sc, tmp_path, seed=7, workers=2)  # the HPA arm first, text columns packed for the trip back
    assert [r.arm for r in runs] == list(sc.arms)
    for run in runs:
        again = load_run(run.path)
        pd.testing.assert_frame_equal(run.samples, again.samples)
        pd.testing.assert_frame_equal(run.events, again.events)
