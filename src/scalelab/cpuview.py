"""CPU on one denominator: % of the CPU limit of the replicas that were *running*, ready or not.

A replica that has started but is not ready yet already burns CPU (it loads, warms up, answers
its probes). Dividing the CPU used by the *ready* replicas only makes a compose run read 137–157%
"of the limit" while new containers start. The kit's charts divide by every replica that was
running in that second instead, taken from the run's own ``replica_start``/``replica_stop``
events (a replica is named by the first word of the event's ``detail``); the HPA's own view, a
percentage of the CPU *request*, is converted to the same denominator (× request / limit), and
so is its target.

Reads only a run directory (`scalelab.telemetry.Run`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

__all__ = ["running_replicas", "cpu_pct_of_running_limit", "hpa_seen_pct_of_limit", "hpa_target_pct_of_limit", "AXIS_LABEL"]

AXIS_LABEL = "CPU, % of the limit of running replicas"


def running_replicas(run: Any) -> pd.Series:
    """Replicas running (ready or not) at each sample's ``t_s``, from the run's lifecycle events.

    Falls back to ``replicas_ready`` when the run recorded no lifecycle events at all.
    """
    s = run.samples
    t = s["t_s"].to_numpy(dtype=float)
    ev = run.events
    if ev is None or len(ev) == 0 or not ev["kind"].isin(("replica_start", "replica_stop")).any():
        return pd.to_numeric(s["replicas_ready"], errors="coerce").reset_index(drop=True)
    life = ev[ev["kind"].isin(("replica_start", "replica_stop"))].sort_values("t_s", kind="stable")
    start_replicas = int(run.manifest.get("start_replicas") or 0)
    at_zero = int(((life["kind"] == "replica_start") & (life["t_s"] <= 1.0)).sum())
    implicit = max(0, start_replicas - at_zero)  # initial replicas the run never announced (the simulator)
    running: set[str] = set()
    changes: list[tuple[float, int]] = []  # (time, running count after the event)
    for _, row in life.iterrows():
        name = str(row.get("detail") or "").split(" ")[0]
        if row["kind"] == "replica_start":
            running.add(name)
        elif name in running:
            running.discard(name)
        elif implicit > 0:
            implicit -= 1
        changes.append((float(row["t_s"]), implicit + len(running)))
    times = np.array([c[0] for c in changes])
    counts = np.array([c[1] for c in changes])
    idx = np.searchsorted(times, t, side="right") - 1
    first = float(start_replicas) if start_replicas else float(s["replicas_ready"].iloc[0]) if len(s) else 0.0
    out = np.where(idx >= 0, counts[np.clip(idx, 0, None)], first)
    return pd.Series(out.astype(float))


def cpu_pct_of_running_limit(run: Any) -> pd.Series:
    """CPU cores used / (running replicas × CPU limit), in %, per sample."""
    used = pd.to_numeric(run.samples["cpu_cores_used"], errors="coerce").reset_index(drop=True)
    limit = float(run.scenario.workload.cpu_limit)
    running = running_replicas(run).replace(0, np.nan)
    return used / (running * limit) * 100.0


def hpa_seen_pct_of_limit(run: Any) -> pd.Series:
    """What the HPA saw (% of the CPU request) on the same denominator: × request / limit."""
    work = run.scenario.workload
    seen = pd.to_numeric(run.samples["hpa_util_pct"], errors="coerce").reset_index(drop=True)
    return seen * float(work.cpu_request) / float(work.cpu_limit)


def hpa_target_pct_of_limit(run: Any) -> tuple[float, float] | None:
    """(target as % of the limit, target as % of the request) of an HPA run; None for other scalers."""
    try:
        _, arm = run.scenario.arm(run.arm)
    except Exception:  # noqa: BLE001 - a run whose scenario no longer names its arm
        return None
    target = getattr(arm.scaler, "target_cpu_pct", None)
    if target is None or getattr(arm.scaler, "type", "") != "hpa":
        return None
    work = run.scenario.workload
    return float(target) * float(work.cpu_request) / float(work.cpu_limit), float(target)
