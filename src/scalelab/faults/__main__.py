"""``python -m scalelab.faults RUN_DIR...``: the platform x fault table of recorded runs (rollouts included)."""

from __future__ import annotations

import sys
from pathlib import Path

from scalelab.errors import ScalelabError
from scalelab.faults.measure import fault_impacts, impact_rows
from scalelab.rollout.measure import as_fault_rows, rollout_impacts

COLUMNS = ("platform", "kind", "t_fault_s", "requests", "failed", "failed_5xx", "failed_refused", "failed_reset", "failed_timeout",
           "error_window_s", "to_replacement_s", "to_ready_s", "to_first_2xx_s", "to_desired_s", "ready_before", "ready_min", "p99_ms", "max_ms")


def table(run_dirs: list[Path]) -> list[dict[str, object]]:
    from scalelab.telemetry.store import load_run

    rows: list[dict[str, object]] = []
    for path in run_dirs:
        run = load_run(path)
        records = run.requests.to_dict("records"), run.events.to_dict("records"), run.samples.to_dict("records")
        offset = float(run.manifest.get("sample_offset_s", 0.4))
        platform = str(run.manifest.get("platform", ""))
        rows += impact_rows(platform, fault_impacts(*records, sample_offset_s=offset))
        rows += as_fault_rows(platform, rollout_impacts(*records, sample_offset_s=offset))
    return rows


def render(rows: list[dict[str, object]], columns: tuple[str, ...] = COLUMNS) -> str:
    def cell(v: object) -> str:
        if v is None:
            return "-"
        return f"{v:.2f}" if isinstance(v, float) else str(v)

    body = [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(b[i]) for b in body)) if body else len(c) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(b, widths)) for b in body]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m scalelab.faults RUN_DIR...", file=sys.stderr)
        return 2
    try:
        rows = table([Path(a) for a in argv])
    except ScalelabError as exc:
        print(f"ERROR: {exc.render()}", file=sys.stderr)
        return 1
    print(render(rows) if rows else "no fault or rollout events in these runs")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
