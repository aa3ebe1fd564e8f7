"""The platform x (fault, rollout) table of recorded runs: one row per fault or rollout.

`run_rows(run)` measures one loaded run (`scalelab.faults.measure`, `scalelab.rollout.measure`);
`render(rows, columns)` lays rows out as plain text. Used by ``python -m scalelab.faults``,
``python -m scalelab.rollout`` and `scalelab report`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from scalelab.faults.measure import fault_impacts, impact_rows
from scalelab.rollout.measure import as_fault_rows, rollout_impacts

__all__ = ["COLUMNS", "SHORT_COLUMNS", "run_rows", "records_rows", "render", "main"]

COLUMNS = ("arm", "platform", "kind", "t_fault_s", "requests", "failed", "failed_5xx", "failed_refused", "failed_reset", "failed_timeout",
           "error_window_s", "to_node_down_s", "to_replacement_s", "to_ready_s", "to_first_2xx_s", "to_desired_s", "ready_before", "ready_min", "restarts", "p99_ms", "max_ms")
#: the report's columns (header -> row key)
SHORT_COLUMNS = {"arm": "arm", "what": "kind", "at (s)": "t_fault_s", "failed": "failed", "5xx": "failed_5xx", "refused": "failed_refused",
                 "reset": "failed_reset", "timeout": "failed_timeout", "error window (s)": "error_window_s", "first 2xx new (s)": "to_first_2xx_s",
                 "back to desired / rollout done (s)": "to_desired_s", "ready min": "ready_min", "restarts": "restarts", "p99 (ms)": "p99_ms", "max (ms)": "max_ms"}


def run_rows(run: Any) -> list[dict[str, Any]]:
    """The faults and rollouts of one `scalelab.telemetry.Run`, as table rows (``arm`` included)."""
    records = run.requests.to_dict("records"), run.events.to_dict("records"), run.samples.to_dict("records")
    rows = records_rows(str(run.manifest.get("platform", "")), *records, sample_offset_s=float(run.manifest.get("sample_offset_s", 0.4)))
    return [{"arm": run.label, **r} for r in rows]


def records_rows(platform: str, requests: Any, events: Any, samples: Any, *, sample_offset_s: float = 0.4) -> list[dict[str, Any]]:
    """The faults and rollouts of a run's records (rows of requests.csv, events.csv, samples.csv), as table rows."""
    rows = impact_rows(platform, fault_impacts(requests, events, samples, sample_offset_s=sample_offset_s))
    return rows + as_fault_rows(platform, rollout_impacts(requests, events, samples, sample_offset_s=sample_offset_s))


def cell(value: object) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def render(rows: Sequence[dict[str, Any]], columns: Sequence[str] = COLUMNS) -> str:
    body = [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(b[i]) for b in body)) if body else len(c) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(b, widths)) for b in body]
    return "\n".join(lines)


def main(argv: list[str], rows_of: Callable[[Any], list[dict[str, Any]]], columns: Sequence[str], *, module: str, empty: str) -> int:
    """``python -m MODULE RUN_DIR...``: load each run (a folder of runs: the newest of each arm), print its rows as a table."""
    from scalelab.errors import ScalelabError
    from scalelab.report import expand_run_dirs
    from scalelab.telemetry.store import load_run

    if not argv:
        print(f"usage: python -m {module} RUN_DIR...", file=sys.stderr)
        return 2
    try:
        rows = [row for path in expand_run_dirs([Path(a) for a in argv]) for row in rows_of(load_run(path))]
    except ScalelabError as exc:
        print(f"ERROR: {exc.render()}", file=sys.stderr)
        return 1
    print(render(rows, columns) if rows else empty)
    return 0
