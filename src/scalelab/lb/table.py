"""The strategy table: one row per recorded run, what its front door did to unequal replicas.

Read from the run directory only (manifest, requests.csv, replicas.csv): the strategy the run
recorded, requests and errors during the load, p95 of the answered ones (all, and on the weak
replica alone), and the per-replica spread: the share of the requests the weak replica was
given (its fair share by capacity is its CPU limit over the sum of limits: 0.2 for 0.25 + 0.25 +
0.125) and the busiest replica's share. "Given" counts what a replica answered (replicas.csv)
and, for the weak replica, the requests that timed out: on these runs only the weak replica
queues past the client's timeout (the p95 columns show it), and a request that timed out has no
replica name in requests.csv.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from scalelab.lb.strategies import STRATEGIES
from scalelab.telemetry.store import Run, list_runs, load_run

__all__ = ["strategy_row", "strategy_rows", "render_strategy_table", "latest_per_arm", "COLUMNS"]

COLUMNS = {
    "strategy": "strategy",
    "requests": "requests",
    "errors": "errors",
    "p95_ms": "p95 ms",
    "weak_p95_ms": "p95 ms weak",
    "weak_share": "weak share",
    "capacity_share": "weak fair",
    "busiest_share": "busiest share",
}


def _p95(values: Any) -> float | None:
    return float(values.quantile(0.95)) if len(values) else None


def strategy_row(run: Run) -> dict[str, Any]:
    """The table's figures for one run (shares over the requests each replica answered)."""
    m = run.manifest
    info = m.get("platform_info") or {}
    door = m.get("front_door") or {}
    weak_ids = set(info.get("weak_replicas") or [])
    req = run.requests
    duration = float(m.get("duration_s") or 0)
    during = req[(req.t_s > 0) & (req.t_s <= duration + float(m.get("drain_s") or 0))] if len(req) else req
    ok = during[during.ok == 1] if len(during) else during
    per = run.replicas.groupby("replica")["requests"].sum() if len(run.replicas) else None
    errors = int((during.ok == 0).sum()) if len(during) else 0
    # what each replica was given: what it answered, and the weak one also the client timeouts
    # (only the weak replica queues past the timeout here; the others' p95 shows it)
    given = per.astype(float).copy() if per is not None else None
    if given is not None and weak_ids and errors:
        given[sorted(weak_ids & set(given.index))[0]] += errors
    total = float(given.sum()) if given is not None else 0.0
    weak = float(given[[r for r in given.index if r in weak_ids]].sum()) if given is not None else 0.0
    strong_limit = info.get("agent_cpu_limit_cores")
    weak_limit = info.get("weak_cpu_limit_cores")
    n = len(per) if per is not None else 0
    capacity = None
    if strong_limit and weak_limit and n and weak_ids:
        capacity = len(weak_ids) * weak_limit / ((n - len(weak_ids)) * strong_limit + len(weak_ids) * weak_limit)
    return {
        "run": run.path.name,
        "arm": run.arm,
        "strategy": door.get("strategy") or info.get("lb_strategy") or "?",
        "requests": len(during),
        "errors": errors,
        "p95_ms": _p95(ok.response_ms) if len(ok) else None,
        "weak_p95_ms": _p95(ok[ok.replica.astype(str).isin(weak_ids)].response_ms) if len(ok) and weak_ids else None,
        "weak_share": weak / total if total and weak_ids else None,
        "capacity_share": capacity,
        "busiest_share": float(given.max()) / total if given is not None and total else None,
        "replicas": n,
    }


def strategy_rows(runs: Sequence[Run]) -> list[dict[str, Any]]:
    return [strategy_row(r) for r in runs]


def latest_per_arm(runs_dir: str | Path, scenario: str) -> list[Run]:
    """The newest completed real run of each arm of ``scenario`` under ``runs_dir``, in the order of the strategies."""
    newest: dict[str, Run] = {}
    for path in list_runs(runs_dir):
        run = load_run(path)
        m = run.manifest
        if m.get("scenario") == scenario and m.get("platform") != "sim" and m.get("status") == "completed":
            newest[run.arm] = run  # list_runs is sorted by run id, which starts with the time
    order = list(STRATEGIES)

    def rank(run: Run) -> tuple[int, str]:
        strategy = (run.manifest.get("front_door") or {}).get("strategy")
        return (order.index(strategy) if strategy in order else len(order), run.arm)

    return sorted(newest.values(), key=rank)


def _cell(key: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if key.endswith("share"):
        return f"{value:.2f}"
    if isinstance(value, float):
        return f"{value:,.0f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def render_strategy_table(rows: Sequence[dict[str, Any]], *, width: int = 110, title: str | None = None) -> str:
    """Plain text (rich), one row per run in the given order."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for key, heading in COLUMNS.items():
        table.add_column(heading, justify="left" if key == "strategy" else "right", no_wrap=True)
    for row in rows:
        table.add_row(*(_cell(key, row.get(key)) for key in COLUMNS))
    buffer = io.StringIO()
    Console(file=buffer, width=width, color_system=None, force_terminal=False, legacy_windows=False).print(table)
    return buffer.getvalue().rstrip() + "\n"
