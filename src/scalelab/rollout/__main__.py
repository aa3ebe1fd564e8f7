"""``python -m scalelab.rollout RUN_DIR...`` (or a folder of runs: the newest of each arm): what each recorded rollout cost (docs/rollouts.md)."""

from __future__ import annotations

import sys
from pathlib import Path

from scalelab.errors import ScalelabError
from scalelab.faults.table import render
from scalelab.rollout.measure import rollout_impacts, rollout_rows

COLUMNS = ("arm", "platform", "strategy", "to", "ok", "t_start_s", "wall_s", "requests", "failed", "failed_5xx", "failed_refused", "failed_reset",
           "failed_timeout", "error_window_s", "first_new_s", "last_old_s", "old_after_end", "ready_before", "ready_min", "p99_ms", "max_ms")


def table(run_dirs: list[Path]) -> list[dict[str, object]]:
    from scalelab.telemetry.store import load_run

    rows: list[dict[str, object]] = []
    for path in run_dirs:
        run = load_run(path)
        impacts = rollout_impacts(run.requests.to_dict("records"), run.events.to_dict("records"), run.samples.to_dict("records"),
                                  sample_offset_s=float(run.manifest.get("sample_offset_s", 0.4)))
        rows += [{"arm": run.label, **r} for r in rollout_rows(str(run.manifest.get("platform", "")), impacts)]
    return rows


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m scalelab.rollout RUN_DIR...", file=sys.stderr)
        return 2
    try:
        from scalelab.report import expand_run_dirs

        rows = table(expand_run_dirs(argv))
    except ScalelabError as exc:
        print(f"ERROR: {exc.render()}", file=sys.stderr)
        return 1
    print(render(rows, COLUMNS) if rows else "no rollout events in these runs")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
