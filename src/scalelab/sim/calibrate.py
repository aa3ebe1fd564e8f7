"""Fit the simulator to a recorded run: CPU per request, start delay and readiness delay.

Reads only the run directory. ``work_ms`` = Σ(CPU used − idle) / Σ requests over the seconds
that served requests; the start delay is the median time from a scale decision (``scale`` or
``hpa_rescale`` event) to the next ``replica_start``; the readiness delay is the median
``replica_start`` → ``replica_ready`` of each replica. The result is written as ``--set``
overrides (YAML) that `scalelab sim` accepts.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from scalelab.errors import RunFormatError
from scalelab.sim.service import ServiceParams
from scalelab.telemetry import Run

__all__ = ["Calibration", "calibrate", "write_calibration", "calibration_path", "DEFAULT_DIR"]

#: Where `scalelab calibrate` writes by default: runs are immutable, so never into the run it reads.
DEFAULT_DIR = Path("reports") / "calibration"


def calibration_path(run_dir: str | os.PathLike[str], out: str | os.PathLike[str] | None = None) -> Path:
    """``out``, or ``reports/calibration/<run-id>.yaml``; refuses a path inside the run directory."""
    run = Path(run_dir).resolve()
    path = Path(out) if out is not None else DEFAULT_DIR / f"{run.name}.yaml"
    if path.resolve().is_relative_to(run):
        raise RunFormatError(
            f"--out {path} is inside the run directory {run_dir}: a run is written once and never changed afterwards",
            fix=f"write the calibration elsewhere, e.g. --out {DEFAULT_DIR / (run.name + '.yaml')} (the default)",
            lab="05-what-if-with-the-simulator",
        )
    return path


@dataclass(frozen=True)
class Calibration:
    run_id: str
    work_ms: float | None
    start_delay_s: float | None
    warmup_s: float | None
    seconds_used: int
    replicas_timed: int

    def overrides(self) -> list[str]:
        """``--set`` arguments for the scenario (the start delay is a model setting, see the YAML)."""
        out = []
        if self.work_ms is not None:
            out.append(f"workload.work_ms={self.work_ms:.1f}")
        if self.warmup_s is not None:
            out.append(f"workload.warmup_s={self.warmup_s:.2f}")
        return out


def calibrate(run: Run, *, min_rps: float = 1.0) -> Calibration:
    s = run.samples
    rps = pd.to_numeric(s["rps"], errors="coerce")
    cpu = pd.to_numeric(s["cpu_cores_used"], errors="coerce")
    running = pd.to_numeric(s["replicas_ready"], errors="coerce").fillna(0)
    use = (rps >= min_rps) & cpu.notna()
    if not use.any():
        raise RunFormatError(
            f"{run.path}: no second with cpu_cores_used and at least {min_rps} request/s to fit the CPU per request",
            fix="calibrate from a run that served load (a spike or steady run with the sampler's CPU column filled)",
        )
    idle = ServiceParams().idle_cores
    busy = (cpu[use] - running[use] * idle).clip(lower=0).sum()
    work_ms = float(busy / rps[use].sum() * 1000.0)
    start_delay, warmup, timed = _delays(run.events)
    return Calibration(str(run.manifest.get("run_id", run.path.name)), work_ms, start_delay, warmup, int(use.sum()), timed)


def _delays(events: pd.DataFrame) -> tuple[float | None, float | None, int]:
    if events is None or len(events) == 0:
        return None, None, 0
    ev = events.sort_values("t_s", kind="stable")
    decisions = ev[ev["kind"].isin(["scale", "hpa_rescale"])]["t_s"].to_numpy(dtype=float)
    starts = ev[ev["kind"] == "replica_start"]
    readies = ev[ev["kind"] == "replica_ready"]
    start_delays = []
    for t in starts["t_s"].to_numpy(dtype=float):
        earlier = decisions[decisions <= t]
        if len(earlier):
            start_delays.append(t - earlier[-1])
    ready_at = dict(zip(readies["detail"], readies["t_s"].astype(float)))
    warmups = [ready_at[name] - t for name, t in zip(starts["detail"], starts["t_s"].astype(float)) if name in ready_at and ready_at[name] >= t]
    median = lambda xs: float(pd.Series(xs).median()) if xs else None  # noqa: E731
    return median(start_delays), median(warmups), len(warmups)


def write_calibration(cal: Calibration, path: str | os.PathLike[str]) -> Path:
    """YAML with the fitted figures and the ``--set`` overrides that apply them."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = {"calibrated_from": cal.run_id, "fitted": asdict(cal), "set": cal.overrides()}
    out.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return out
