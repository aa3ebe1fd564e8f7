"""``python -m scalelab.rollout RUN_DIR...`` (or a folder of runs: the newest of each arm): what each recorded
rollout cost (docs/rollouts.md)."""

from __future__ import annotations

import sys
from typing import Any

from scalelab.faults.table import main
from scalelab.rollout.measure import rollout_impacts, rollout_rows

__all__ = ["COLUMNS", "rows_of"]

COLUMNS = ("arm", "platform", "strategy", "to", "ok", "t_start_s", "wall_s", "requests", "failed", "failed_5xx", "failed_refused", "failed_reset",
           "failed_timeout", "error_window_s", "first_new_s", "last_old_s", "old_after_end", "ready_before", "ready_min", "p99_ms", "max_ms")


def rows_of(run: Any) -> list[dict[str, Any]]:
    """One row per rollout of a loaded run."""
    impacts = rollout_impacts(run.requests.to_dict("records"), run.events.to_dict("records"), run.samples.to_dict("records"),
                              sample_offset_s=float(run.manifest.get("sample_offset_s", 0.4)))
    return [{"arm": run.label, **r} for r in rollout_rows(str(run.manifest.get("platform", "")), impacts)]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], rows_of, COLUMNS, module="scalelab.rollout", empty="no rollout events in these runs"))
