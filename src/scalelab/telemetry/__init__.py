"""One run format shared by every platform and the simulator."""

from scalelab.telemetry.schema import (
    EVENT_COLUMNS,
    PLACEMENT_COLUMNS,
    REQUEST_COLUMNS,
    SAMPLE_COLUMNS,
    STATUSES,
)
from scalelab.telemetry.store import Run, RunWriter, list_runs, load_run, new_run_id

__all__ = [
    "SAMPLE_COLUMNS",
    "EVENT_COLUMNS",
    "REQUEST_COLUMNS",
    "PLACEMENT_COLUMNS",
    "STATUSES",
    "Run",
    "RunWriter",
    "load_run",
    "list_runs",
    "new_run_id",
]
