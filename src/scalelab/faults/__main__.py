"""``python -m scalelab.faults RUN_DIR...`` (or a folder of runs: the newest of each arm): the platform x fault table
of recorded runs, rollouts included."""

from __future__ import annotations

import sys

from scalelab.faults.table import COLUMNS, main, render, run_rows

__all__ = ["COLUMNS", "render"]

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], run_rows, COLUMNS, module="scalelab.faults", empty="no fault or rollout events in these runs"))
