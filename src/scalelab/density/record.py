"""A density run in the kit's run format: manifest.json, samples.csv, events.csv, plus density.csv.

``density.csv`` has one row per batch (columns in `DENSITY_DOCS`); ``samples.csv`` one row per
batch with the replica counts and host memory, so the generic readers (`load_run`) open a
density run like any other; ``events.csv`` a ``scale`` event per batch and a ``note`` with the
stop reason and the exact error. The manifest holds the host limits read before the ramp, the
prediction and, at the end, the observed stop and the teardown figures.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scalelab.telemetry.store import RunWriter, git_revision, iso, utc_now

__all__ = ["DENSITY", "CONTAINERS", "DENSITY_COLUMNS", "DENSITY_DOCS", "Recorder", "DensityRun", "load_density", "measured_costs", "new_density_run_id"]

DENSITY = "density.csv"
CONTAINERS = "containers.txt"

DENSITY_DOCS: dict[str, str] = {
    "t_s": "seconds since the ramp started, at the end of this batch (after the settle pause)",
    "utc": "UTC time of the row",
    "batch": "batch number, from 1",
    "n_requested": "containers (pods) asked for so far",
    "n_running": "containers running (pods Running) after this batch",
    "started": "containers started in this batch",
    "failed": "starts that failed in this batch",
    "pending": "Kubernetes: pods Pending after this batch (empty on Docker)",
    "latency_p50_ms": "create+start API latency of this batch's containers, median (Kubernetes: create -> Ready)",
    "latency_p95_ms": "the same, 95th percentile",
    "latency_max_ms": "the same, slowest",
    "ready_p50_ms": "workload mode: create -> first HTTP 200 from /readyz, median",
    "batch_s": "wall time of the batch's starts",
    "containers_per_s": "started / batch_s",
    "mem_available_mb": "MemAvailable after the batch, MiB",
    "mem_per_container_mb": "drop of MemAvailable since the ramp started / containers running (noisy when others use the host)",
    "cgroup_mb": "memory charged to the container's own cgroup (its processes, page cache, kernel memory), average, MiB",
    "shim_rss_mb": "containerd-shim resident memory, average per container, MiB",
    "shim_pss_mb": "containerd-shim proportional memory (shared pages split), average, MiB",
    "tasks_total": "kernel tasks (threads) on the host after the batch",
    "tasks_per_container": "growth of kernel tasks since the ramp started / containers running",
    "fds_per_container": "growth of dockerd + containerd fds, plus every shim's fds, / containers running",
    "dockerd_rss_mb": "dockerd resident memory, MiB",
    "dockerd_cpu_pct": "dockerd CPU over the batch and its settle pause, % of one core",
    "dockerd_fds": "dockerd open file descriptors",
    "containerd_rss_mb": "containerd resident memory, MiB",
    "containerd_fds": "containerd open file descriptors",
    "memcg": "memory cgroups on the host (num_cgroups)",
    "bridge_ports": "network modes: interfaces on the run's bridge",
    "arp_entries": "IPv4 neighbour entries on the host",
    "ps_ms": "latency of listing all containers (what `docker ps` asks the engine), ms",
    "load1": "1-minute load average after the batch",
    "stop": "the stop rule that ended the ramp after this batch (empty: go on)",
    "error": "the first error of this batch, word for word",
}
DENSITY_COLUMNS: tuple[str, ...] = tuple(DENSITY_DOCS)


def new_density_run_id(kind: str) -> str:
    """``20261204-193000-density-runtime-1a2b``: sortable, unique."""
    return f"{utc_now().strftime('%Y%m%d-%H%M%S')}-density-{kind}-{secrets.token_hex(2)}"


class Recorder:
    """Writes one density run directory incrementally (every row flushed)."""

    def __init__(self, runs_dir: Path, run_id: str, *, platform: str, mode: str, extra: dict[str, Any]) -> None:
        from scalelab.telemetry.store import _CsvAppender
        from scalelab.versions import component_versions

        manifest = {
            "run_id": run_id,
            "kind": "density",
            "scenario": "density",
            "arm": f"density-{mode}",
            "platform": platform,
            "mode": mode,
            "versions": component_versions(),
            "git_revision": git_revision(),
            "host": {"hostname": os.uname().nodename, "cpus": os.cpu_count(), "system": " ".join(os.uname()[:3])},
            "utc_start": iso(utc_now()),
            "utc_end": None,
            "status": "running",
            **extra,
        }
        self.writer = RunWriter(Path(runs_dir) / run_id, manifest)
        self.dir = self.writer.dir
        self._rows = _CsvAppender(self.dir / DENSITY, DENSITY_COLUMNS)

    def batch(self, row: dict[str, Any]) -> None:
        row.setdefault("utc", iso(utc_now()))
        self._rows.write(row)
        self.writer.sample(t_s=row["t_s"], utc=row["utc"], phase="load", replicas_desired=row["n_requested"],
                           replicas_ready=row["n_running"], mem_mb=_mem_used(row))
        self.writer.event(row["t_s"], "scale", replicas=row["n_requested"], source="density",
                          detail=f"batch {row['batch']}: {row.get('started', 0)} started, {row.get('failed', 0)} failed")

    def containers(self, ids: list[str]) -> None:
        """Every container id the run made (``containers.txt``): what a later check looks for."""
        (self.dir / CONTAINERS).write_text("".join(f"{cid}\n" for cid in ids), encoding="utf-8")

    def note(self, t_s: float, text: str, **manifest: Any) -> None:
        self.writer.event(t_s, "note", source="density", detail=text)
        if manifest:
            self.writer.note(**manifest)

    def finish(self, status: str, error: str | None = None) -> None:
        self._rows.close()
        self.writer.finish(status, error=error)


def _mem_used(row: dict[str, Any]) -> float | None:
    per, n = row.get("mem_per_container_mb"), row.get("n_running")
    return None if per is None or n is None else per * n


@dataclass
class DensityRun:
    """A density run read back: manifest and the per-batch frame."""

    path: Path
    manifest: dict[str, Any]
    batches: Any  # pandas.DataFrame

    @property
    def mode(self) -> str:
        return str(self.manifest.get("mode", ""))

    def at(self, n: int) -> dict[str, Any]:
        """The batch row whose running count is closest to ``n`` (for "latency at 10/100/cap")."""
        frame = self.batches
        idx = (frame["n_running"] - n).abs().idxmin()
        return frame.loc[idx].to_dict()


def load_density(path: str | os.PathLike[str]) -> DensityRun:
    import pandas as pd

    from scalelab.telemetry import load_run

    run = load_run(path)
    file = Path(path) / DENSITY
    if not file.is_file():
        from scalelab.errors import RunFormatError

        raise RunFormatError(f"{path} has no {DENSITY}: not a density run", fix="pass a run written by `scalelab density run` (runs/density/<id>)",
                             lab="12-density")
    return DensityRun(path=run.path, manifest=run.manifest, batches=pd.read_csv(file))


def measured_costs(run_dir: Path) -> dict[str, float]:
    """Per-container figures a recorded run measured, as `plan.Costs` fields.

    Tasks from the last batch; daemon fds from their growth since the limits were read; memory
    from the least-squares slope of MemAvailable over the batches (one difference is noisy).
    """
    from scalelab.density.figure import memory_slope_mb

    run = load_density(run_dir)
    last = run.batches.dropna(subset=["tasks_per_container"]).iloc[-1]
    n = float(last["n_running"])
    limits = run.manifest.get("limits", {})
    out = {"tasks": float(last["tasks_per_container"])}
    for name in ("dockerd_fds", "containerd_fds"):
        if limits.get(name) is not None and last.get(name) == last.get(name) and n > 0:
            out[name] = (float(last[name]) - float(limits[name])) / n
    slope = memory_slope_mb(run)
    if slope is not None:
        out["memory_bytes"] = slope * 1024**2
    return {k: round(v, 2) for k, v in out.items() if v == v and v > 0}
