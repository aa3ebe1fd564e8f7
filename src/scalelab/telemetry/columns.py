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

from collections.abc import Callable, Mapping, Sequence
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


#: Rows formatted and written at a time: the cells of a block are made, joined and dropped before
#: the next (a simulated day is 1.6 million cells; made all at once they cost memory, not time).
ROW_BLOCK = 8192

Cells = Callable[[int, int], list[str]]  # (lo, hi) -> the column's cells of rows lo..hi-1


def _table_cells(texts: list[str], index: np.ndarray) -> Cells:
    """Cells of a column with few distinct values: each printed once, looked up per row."""
    table = np.array(texts, dtype=object)
    return lambda lo, hi: table[index[lo:hi]].tolist()


def _float_cells(rounded: np.ndarray) -> Cells:
    """Cells of values already rounded by `round4` (NaN empty)."""
    missing = np.isnan(rounded)
    # a value rounded to 4 decimals is k / 10⁴ for a whole k: count the distinct ks (-0.0, equal
    # to 0.0 but printed otherwise, is left to the cell-by-cell path)
    keys = np.rint(np.where(missing, 0.0, rounded) * 1e4)
    counted, index = _codes(keys, missing)
    if counted and index is not None and not bool((np.signbit(rounded) & (rounded == 0.0)).any()):
        values = np.full(int(index.max()) + 1, np.nan)
        values[index] = rounded  # each distinct value, taken from the column itself
        return _table_cells(_float_texts(values), index)
    # too wide a range to count in a table (memory in MB, latency in ms): sort, unless every other
    # value of a sample of rows differs (a day's p95 or its running cost: printed one by one anyway)
    if not counted and len(np.unique(rounded[:: max(1, len(rounded) // _SAMPLE)])) * 2 <= min(len(rounded), _SAMPLE):
        distinct, where = np.unique(rounded, return_inverse=True)
        if len(distinct) * 4 < len(rounded):
            return _table_cells(_float_texts(distinct), where.reshape(-1))

    def cells(lo: int, hi: int) -> list[str]:
        out = list(map(repr, rounded[lo:hi].tolist()))
        for i in np.flatnonzero(missing[lo:hi]).tolist():
            out[i] = ""
        return out

    return cells


def _float_texts(values: np.ndarray) -> list[str]:
    """Each value's cell: ``repr`` (Python's shortest form), NaN empty."""
    return ["" if v != v else repr(v) for v in values.tolist()]


def _int_cells(arr: np.ndarray, missing: np.ndarray | None = None) -> Cells:
    """Cells of whole numbers (``missing``: empty cells): each distinct value printed once when
    there are few (replica counts), the seconds 0, 1, 2, ... of a run once per simulation."""
    gaps = missing is not None and bool(missing.any())
    if not gaps and len(arr) > 1 and arr[0] == 0 and bool((np.diff(arr) == 1).all()):
        counting = _counting(len(arr))
        return lambda lo, hi: counting[lo:hi]
    _, few = _codes(arr, missing if gaps else None)
    if few is not None:
        values = np.zeros(int(few.max()) + 1, dtype=np.int64)
        values[few] = arr
        texts = list(map(str, values.tolist()))
        if gaps:
            texts[-1] = ""
        return _table_cells(texts, few)
    distinct, index = np.unique(arr, return_inverse=True)
    texts, index = list(map(str, distinct.tolist())), index.reshape(-1)
    if gaps:
        texts.append("")
        index = np.where(missing, len(texts) - 1, index)  # type: ignore[arg-type]
    table = texts
    return lambda lo, hi: [table[i] for i in index[lo:hi].tolist()]


#: The widest range of whole numbers `_codes` counts in a table (a megabyte of flags).
_SPAN_MAX = 1 << 20
#: Rows of a wide-ranged column looked at to guess whether it has few distinct values.
_SAMPLE = 4096


def _codes(keys: np.ndarray, missing: np.ndarray | None = None) -> tuple[bool, np.ndarray | None]:
    """Whether a column of whole numbers (``missing``: rows without a value) lies in a range narrow
    enough to count its values in a table (replica counts, load levels, CPU in tenths of a
    millicore), and when it does and has few distinct values, each row's index into those values in
    increasing order (the rows without a value last; else None). One pass, where `numpy.unique`
    would sort all 86,400 rows of a simulated day's column.

    Which path prints a column is only a question of speed: a value is printed the same either way.
    """
    n = len(keys)
    gaps = missing is not None and bool(missing.any())
    whole = keys[~missing] if gaps else keys  # type: ignore[operator]
    if not len(whole):
        return False, None
    lo, hi = whole.min(), whole.max()
    if not (abs(float(lo)) < 2.0**52 and abs(float(hi)) < 2.0**52 and float(hi) - float(lo) <= _SPAN_MAX):
        return False, None
    offsets = ((np.where(missing, lo, keys) if gaps else keys) - lo).astype(np.int64)  # type: ignore[arg-type]
    present = np.bincount(offsets, minlength=int(hi - lo) + 1) > 0
    count = int(present.sum())
    if (count + gaps) * 4 >= n:
        return True, None
    index = (np.cumsum(present) - 1)[offsets]
    return True, (np.where(missing, count, index) if gaps else index)  # type: ignore[arg-type]


@lru_cache(maxsize=4)
def _counting(n: int) -> list[str]:
    """``["0", "1", ..., str(n-1)]``, shared by the runs of one simulation (callers slice it)."""
    return list(map(str, range(n)))


def format_column(values: Any, n: int, *, integer: bool = False) -> list[str]:
    """``n`` CSV cells for one column: a scalar (repeated), a numpy array or a sequence.

    ``integer``: whole numbers with gaps (NaN or None -> empty), e.g. the HPA's last utilisation.
    """
    return _column(values, n, integer)[0](0, n)


def _column(values: Any, n: int, integer: bool) -> tuple[Cells, Any]:
    """How to make the cells of one column (a slice at a time), and the values `pandas.read_csv`
    reads back from them (None: not known without reading, for mixed columns)."""
    from scalelab.telemetry.store import _cell

    if values is None or isinstance(values, (str, int, float, bool)):
        cell = str(_cell(values))
        _plain([cell])
        if cell == "":
            return (lambda lo, hi: [cell] * (hi - lo)), np.full(n, np.nan)
        back: Any = values if isinstance(values, str) else (float(cell) if isinstance(values, float) else int(cell))
        return (lambda lo, hi: [cell] * (hi - lo)), np.full(n, back, dtype=object if isinstance(back, str) else None)
    if isinstance(values, list) and values and set(map(type, values)) == {str}:
        if len(values) != n:
            raise ValueError(f"column of {len(values)} values, expected {n}")
        text = _plain(values)
        return (lambda lo, hi: text[lo:hi]), np.array(text, dtype=object)
    arr = np.asarray(values)
    if len(arr) != n:
        raise ValueError(f"column of {len(arr)} values, expected {n}")
    if arr.dtype.kind == "b":
        arr = arr.astype(np.int64)
    if arr.dtype.kind in "iu":
        arr = arr.astype(np.int64)
        return _int_cells(arr), arr
    if integer and arr.dtype.kind in "fO":
        arr = np.asarray(values, dtype=np.float64)
        missing = np.isnan(arr)
        whole = np.where(missing, 0, arr).astype(np.int64)
        return _int_cells(whole, missing), np.where(missing, np.nan, whole) if missing.any() else whole
    if arr.dtype.kind == "f":
        rounded = round4(arr.astype(np.float64))
        return _float_cells(rounded), rounded
    if arr.dtype.kind in "UT":  # text, e.g. ISO times
        text = _plain(arr.tolist())
        return (lambda lo, hi: text[lo:hi]), np.array(text, dtype=object)
    # mixed (e.g. ints and None): one cell at a time
    mixed = _plain([str(_cell(v)) for v in (values.tolist() if isinstance(values, np.ndarray) else values)])
    return (lambda lo, hi: mixed[lo:hi]), None


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
    for lo in range(0, n, ROW_BLOCK):
        hi = min(n, lo + ROW_BLOCK)
        fh.write("\r\n".join(map(",".join, zip(*(cells(lo, hi) for cells, _ in both)))))
        fh.write("\r\n")  # the csv module's line ending, as the row writer's
    fh.flush()
    if any(back is None for _, back in both):
        return None
    return {c: back for c, (_, back) in zip(columns, both)}


def frame(columns: Sequence[str], back: Mapping[str, Any]) -> Any:
    """The pandas frame of the columns `write_columns` returned (what `load_run` reads from the file)."""
    import pandas as pd

    return pd.DataFrame(dict(back), columns=list(columns))
