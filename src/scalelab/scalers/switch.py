"""The on/off switch of a running kit scaler: ``scalelab autoscale pause|resume``.

The command appends one JSON line (``{"autoscale": "pause"|"resume", "pid", "epoch"}``) to
``autoscale.log`` in the running project's state directory (next to the compose settings and
the scale request log); the process running the experiment reads the new lines once a second
(the platform's observation) and reports them as ``autoscale`` events, which the runner passes
to the scaler's ``pause``/``resume``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

__all__ = ["SWITCH_FILE", "write_switch", "SwitchReader"]

SWITCH_FILE = "autoscale.log"
ACTIONS = ("pause", "resume")


def write_switch(state_dir: Path, action: str) -> Path:
    """Append one switch request; returns the file."""
    if action not in ACTIONS:
        raise ValueError(f"autoscale action must be one of {', '.join(ACTIONS)}, got {action!r}")
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / SWITCH_FILE
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps({"autoscale": action, "pid": os.getpid(), "epoch": time.time()}) + "\n")
    return path


class SwitchReader:
    """Reads the lines appended since the last call (lines already there when it starts are skipped)."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / SWITCH_FILE
        try:
            self._offset = self.path.stat().st_size
        except FileNotFoundError:
            self._offset = 0

    def events(self) -> list[dict[str, Any]]:
        try:
            with self.path.open("rb") as fh:
                fh.seek(self._offset)
                data = fh.read()
        except FileNotFoundError:
            return []
        complete = data[: data.rfind(b"\n") + 1]
        self._offset += len(complete)
        out = []
        for line in complete.decode("utf-8", "replace").splitlines():
            try:
                action = json.loads(line)["autoscale"]
            except (ValueError, KeyError, TypeError):
                continue
            if action in ACTIONS:
                out.append({"kind": "autoscale", "replicas": None, "source": "live", "detail": action})
        return out
