"""``python -m scalelab.faults RUN_DIR...`` (or a folder of runs: the newest of each arm): the platform x fault table of recorded runs (rollouts included)."""

from __future__ import annotations

import sys
from pathlib import Path

from scalelab.errors import ScalelabError
from scalelab.faults.table import COLUMNS, render, run_rows

__all__ = ["COLUMNS", "render", "table", "main"]


def table(run_dirs: list[Path]) -> list[dict[str, object]]:
    from scalelab.telemetry.store import load_run

    return [row for path in run_dirs for row in run_rows(load_run(path))]


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m scalelab.faults RUN_DIR...", file=sys.stderr)
        return 2
    try:
        from scalelab.report import expand_run_dirs

        rows = table(expand_run_dirs(argv))
    except ScalelabError as exc:
        print(f"ERROR: {exc.render()}", file=sys.stderr)
        return 1
    print(render(rows) if rows else "no fault or rollout events in these runs")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
