"""Grow a real run directory from a recorded one, second by second (for the live-view test).

`GrowingRun` copies a committed run's manifest (status ``running``) and scenario, then appends
its samples, events and requests in run-time order at ``speed`` x real time, flushing each line
like `scalelab run` does; at the end the manifest says ``completed``. The result is a run
directory being written, read by the live view exactly as it reads a run in progress.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

FILES = ("samples.csv", "events.csv", "requests.csv")


class GrowingRun(threading.Thread):
    def __init__(self, source: Path, target: Path, *, speed: float) -> None:
        super().__init__(daemon=True, name=f"grow-{target.name}")
        self.source, self.target, self.speed = source, target, speed
        self.stop = threading.Event()
        target.mkdir(parents=True)
        manifest = json.loads((source / "manifest.json").read_text())
        shutil.copy(source / "scenario.yaml", target / "scenario.yaml")
        self.final = manifest
        (target / "manifest.json").write_text(json.dumps({**manifest, "status": "running", "run_id": target.name}, indent=2))
        self.lines: dict[str, list[tuple[float, str]]] = {}
        for name in FILES:
            header, *rows = (source / name).read_text().splitlines(keepends=True)
            (target / name).write_text(header)
            self.lines[name] = [(float(r.split(",", 1)[0]), r) for r in rows]
        self.written_t = -1.0

    def run(self) -> None:
        handles = {name: (self.target / name).open("a") for name in FILES}
        started = time.monotonic()
        try:
            while not self.stop.is_set():
                now = (time.monotonic() - started) * self.speed
                pending = False
                for name, rows in self.lines.items():
                    while rows and rows[0][0] <= now:
                        handles[name].write(rows.pop(0)[1])
                    handles[name].flush()
                    pending = pending or bool(rows)
                self.written_t = now
                if not pending:
                    break
                time.sleep(0.1)
        finally:
            for fh in handles.values():
                fh.close()
        if not self.stop.is_set():
            (self.target / "manifest.json").write_text(json.dumps({**self.final, "run_id": self.target.name}, indent=2))
