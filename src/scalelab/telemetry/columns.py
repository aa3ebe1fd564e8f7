"""Writing a whole CSV table at once from columns: the simulator's fast path.

A real run writes row by row and flushes each row (`store._CsvAppender`), so a crash keeps what
was recorded. A simulated run has nothing to lose: it computes a day in a second and writes it
in one go. The cells are the same as the row writer's (`store._cell`): floats rounded to 4
decimals in Python's shortest form (``3.0``, ``0.25``), ints as ints, booleans as 0/1, missing
values (None, NaN) as empty cells. Formatting is done a column at a time: numpy rounds
(``rint(x·10⁴)/10⁴`` is the double nearest to the rounded decimal, as ``round(x, 4)`` returns;
near-ties are left to Python's correctly rounded ``round``) and ``repr`` prints each value, so
the cells are byte for byte what the row writer writes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import IO, Any

import numpy as np

__all__ = ["format_column", "write_columns", "round4", "frame"]


def round4(values: np.ndarray) -> np.ndarray:
    """``round(x, 4)`` for every element (NaN stays NaN), exactly as Python rounds."""
    missing = np.isnan(values)
    clean = np.where(missing, 0.0, values)
    raw = clean * 1e4
    rounded = np.rint(raw) / 1e4  # the double nearest to k / 10⁴, as round(x, 4) returns
    # Near a tie the product's rounding error decides: let Python's correctly rounded round() do those.
    for i in np.flatnonzero(np.abs(raw - np.floor(raw) - 0.5) < 1e-5).tolist():
        rounded[i] = round(float(clean[i]), 4)
    rounded[missing] = np.nan
    return rounded


def _format_rounded(rounded: np.ndarray) -> list[str]:
    """Cells of values already rounded by `round4`."""
    distinct, index = np.unique(rounded, return_inverse=True)
    if len(distinct) * 4 < len(rounded):  # few distinct values (replicas, load levels): print each once
        texts = np.array(["" if v != v else repr(v) for v in distinct.tolist()], dtype=object)
        return texts[index.reshape(-1)].tolist()
    cells = list(map(repr, rounded.tolist()))
    for i in np.flatnonzero(np.isnan(rounded)).tolist():
        cells[i] = ""
    return cells


def _format_ints(arr: np.ndarray) -> list[str]:
    """Cells of whole numbers: each distinct value printed once when there are few (replica counts)."""
    if len(arr) > 1 and arr[0] == 0 and bool((np.diff(arr) == 1).all()):
        return _counting(len(arr))[:]  # 0, 1, 2, ...: the seconds of a run
    distinct, index = np.unique(arr, return_inverse=True)
    if len(distinct) * 4 < len(arr):
        return np.array(list(map(str, distinct.tolist())), dtype=object)[index.reshape(-1)].tolist()
    return list(map(str, arr.tolist()))


@lru_cache(maxsize=4)
def _counting(n: int) -> list[str]:
    """``["0", "1", ..., str(n-1)]``, shared by the runs of one simulation (callers copy it)."""
    return list(map(str, range(n)))


def format_column(values: Any, n: int, *, integer: bool = False) -> list[str]:
    """``n`` CSV cells for one column: a scalar (repeated), a numpy array or a sequence.

    ``integer``: whole numbers with gaps (NaN or None -> empty), e.g. the HPA's last utilisation.
    """
    return _column(values, n, integer)[0]


def _column(values: Any, n: int, integer: bool) -> tuple[list[str], Any]:
    """The cells of one column, and the values `pandas.read_csv` reads back from them (None: not
    known without reading, for mixed columns)."""
    from scalelab.telemetry.store import _cell

    if values is None or isinstance(values, (str, int, float, bool)):
        cell = str(_cell(values))
        _plain([cell])
        if cell == "":
            return [cell] * n, np.full(n, np.nan)
        back: Any = values if isinstance(values, str) else (float(cell) if isinstance(values, float) else int(cell))
        return [cell] * n, np.full(n, back, dtype=object if isinstance(back, str) else None)
    if isinstance(values, list) and values and set(map(type, values)) == {str}:
        if len(values) != n:
            raise ValueError(f"column of {len(values)} values, expected {n}")
        return _plain(values), np.array(values, dtype=object)
    arr = np.asarray(values)
    if len(arr) != n:
        raise ValueError(f"column of {len(arr)} values, expected {n}")
    if arr.dtype.kind == "b":
        arr = arr.astype(np.int64)
    if arr.dtype.kind in "iu":
        arr = arr.astype(np.int64)
        return _format_ints(arr), arr
    if integer and arr.dtype.kind in "fO":
        arr = np.asarray(values, dtype=np.float64)
        missing = np.isnan(arr)
        whole = np.where(missing, 0, arr).astype(np.int64)
        cells = _format_ints(whole)
        for i in np.flatnonzero(missing).tolist():
            cells[i] = ""
        return cells, np.where(missing, np.nan, whole) if missing.any() else whole
    if arr.dtype.kind == "f":
        rounded = round4(arr.astype(np.float64))
        return _format_rounded(rounded), rounded
    if arr.dtype.kind in "UT":  # text, e.g. ISO times
        text = arr.tolist()
        return _plain(text), np.array(text, dtype=object)
    # mixed (e.g. ints and None): one cell at a time
    return _plain([str(_cell(v)) for v in (values.tolist() if isinstance(values, np.ndarray) else values)]), None


def _plain(cells: list[str]) -> list[str]:
    """Text cells that need no CSV quoting; one that would is refused (use the row writer)."""
    joined = "\x00".join(cells)
    if "," in joined or '"' in joined or "\n" in joined or "\r" in joined:
        raise ValueError("write_columns: a cell needs CSV quoting; write it with the row writer")
    return cells


def write_columns(fh: IO[str], columns: Sequence[str], data: Mapping[str, Any], n: int, *, integers: Sequence[str] = ()) -> dict[str, Any] | None:
    """Append ``n`` rows to an open CSV file whose header is ``columns``; absent columns stay empty.

    Cells never contain a comma, quote or newline here (numbers, ISO times, names), so no quoting;
    a cell that would need it is refused. Returns the columns as `pandas.read_csv` reads them back
    (numpy arrays, for `frame`), or None when a mixed column is only known by reading it.
    """
    unknown = set(data) - set(columns)
    if unknown:
        from scalelab.errors import RunFormatError

        raise RunFormatError(f"unknown column(s) {sorted(unknown)}; allowed: {', '.join(columns)}")
    both = [_column(data.get(c), n, c in integers) for c in columns]
    if n:
        fh.write("\r\n".join(map(",".join, zip(*(cells for cells, _ in both)))))
        fh.write("\r\n")  # the csv module's line ending, as the row writer's
    fh.flush()
    if any(back is None for _, back in both):
        return None
    return {c: back for c, (_, back) in zip(columns, both)}


def frame(columns: Sequence[str], back: Mapping[str, Any]) -> Any:
    """The pandas frame of the columns `write_columns` returned (what `load_run` reads from the file)."""
    import pandas as pd

    return pd.DataFrame(dict(back), columns=list(columns))
