"""Reading density runs back: the closing summary and the chart of start latency against N, walls marked."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from scalelab.density.record import DensityRun, load_density

__all__ = ["summary", "density_figure", "figures_at", "latest_runs", "memory_slope_mb"]

#: Kubernetes' pod start-up objective: p99 <= 5 s for stateless pods, image pull excluded.
POD_STARTUP_SLO_MS = 5000.0


def _fmt(value: Any, unit: str = "", digits: int = 0) -> str:
    if value is None or value != value:
        return "n/a"
    return f"{value:,.{digits}f}{unit}"


def figures_at(run: DensityRun, points: tuple[int, ...] = (10, 100)) -> dict[str, dict[str, Any]]:
    """Start latency at about 10, 100 and the last batch (the cap or the stop): ``{"10": row, ..., "cap": row}``."""
    frame = run.batches
    out = {str(n): run.at(n) for n in points if not frame.empty and frame["n_running"].max() >= n * 0.8}
    if not frame.empty:
        out["last"] = frame.iloc[-1].to_dict()
    return out


def memory_slope_mb(run: DensityRun) -> float | None:
    """MiB of MemAvailable lost per extra container: the least-squares slope over the batches (less noisy than one difference)."""
    import numpy as np

    frame = run.batches.dropna(subset=["mem_available_mb", "n_running"])
    if len(frame) < 3 or frame["n_running"].nunique() < 3:
        return None
    slope = np.polyfit(frame["n_running"].astype(float), frame["mem_available_mb"].astype(float), 1)[0]
    return float(-slope)


def _docker_summary(run: DensityRun) -> list[str]:
    m, frame = run.manifest, run.batches
    last = frame.iloc[-1].to_dict() if not frame.empty else {}
    total_s = frame["batch_s"].sum() if not frame.empty else 0
    started = frame["started"].sum() if not frame.empty else 0
    observed = m.get("observed", {})
    pred = m.get("prediction", {})
    lines = [
        f"mode {run.mode} on Docker {m.get('engine', {}).get('version', '?')}: {started} containers started in {total_s:.1f} s of starts "
        f"({_fmt(started / total_s if total_s else None, '/s', 1)}), {len(frame)} batches; stop: {observed.get('stop', '?')}",
    ]
    at = figures_at(run)
    lat = [f"{'cap' if k == 'last' and observed.get('stop') == 'cap' else k} ({int(r['n_running'])} running): "
           f"p50 {_fmt(r['latency_p50_ms'], ' ms')}, p95 {_fmt(r['latency_p95_ms'], ' ms')}, max {_fmt(r['latency_max_ms'], ' ms')}"
           for k, r in at.items()]
    lines.append("create+start latency at " + "; ".join(lat))
    lines.append(
        f"per container: {_fmt(last.get('mem_per_container_mb'), ' MiB', 1)} of host memory (MemAvailable drop; slope over the batches "
        f"{_fmt(memory_slope_mb(run), ' MiB', 1)}), shim RSS {_fmt(last.get('shim_rss_mb'), ' MiB', 1)} / PSS {_fmt(last.get('shim_pss_mb'), ' MiB', 1)}, "
        f"own cgroup {_fmt(last.get('cgroup_mb'), ' MiB', 1)}; {_fmt(last.get('tasks_per_container'), ' tasks', 1)}, "
        f"{_fmt(last.get('fds_per_container'), ' fds', 1)}"
    )
    lines.append(f"dockerd: {_fmt(last.get('dockerd_rss_mb'), ' MiB', 0)} RSS, {_fmt(last.get('dockerd_cpu_pct'), '% CPU', 0)} during the last batch, "
                 f"{_fmt(last.get('dockerd_fds'))} fds; listing all containers (`docker ps`): {_fmt(last.get('ps_ms'), ' ms')}")
    lines.append(f"predicted first wall: {pred.get('first_wall', '?')} after ~{_fmt(pred.get('fits'))} (budget {_fmt(pred.get('budget'))}, "
                 f"stops at the {pred.get('stops_at', '?')}); observed: {observed.get('stop', '?')} at {_fmt(observed.get('n_max'))}"
                 + (f", error: {observed['error']}" if observed.get("error") else ""))
    left = observed.get("left") or {}
    lines.append(f"teardown: {_fmt(observed.get('teardown_s'), ' s', 1)}; left behind: "
                 + (", ".join(f"{len(v)} {k}" for k, v in left.items() if v) or "nothing"))
    return lines


def _pods_summary(run: DensityRun) -> list[str]:
    m, frame = run.manifest, run.batches
    observed = m.get("observed", {})
    node = m.get("node", {})
    lines = [
        f"node {node.get('name', '?')}: maxPods {node.get('max_pods', '?')}, {node.get('pods_before', '?')} pods before the ramp -> "
        f"room for {node.get('free_slots', '?')}; asked for {observed.get('requested', '?')}",
        f"observed: {observed.get('running', '?')} of ours Running ({observed.get('pods_on_node', '?')} on the node), "
        f"{observed.get('pending', '?')} Pending" + (f": {observed['reason']}" if observed.get("reason") else ""),
        f"pod start (create -> Ready): p50 {_fmt(observed.get('p50_ms'), ' ms')}, p99 {_fmt(observed.get('p99_ms'), ' ms')}, "
        f"max {_fmt(observed.get('max_ms'), ' ms')} against the 5 s p99 objective: "
        + ("met" if (observed.get("p99_ms") or 0) <= POD_STARTUP_SLO_MS else "MISSED"),
        f"batches: {len(frame)}; stop: {observed.get('stop', '?')}; namespace deleted in {_fmt(observed.get('teardown_s'), ' s', 1)}",
    ]
    return lines


def summary(path: str | os.PathLike[str] | DensityRun) -> str:
    """The figures of one density run, as printed at the end of the run and in lab 12."""
    run = path if isinstance(path, DensityRun) else load_density(path)
    lines = _pods_summary(run) if run.mode == "pods" else _docker_summary(run)
    return "\n".join(lines)


def _walls_on(ax: Any, run: DensityRun, x_max: float) -> None:
    pred, observed = run.manifest.get("prediction", {}), run.manifest.get("observed", {})
    fits = pred.get("fits")
    if fits is not None and fits <= x_max * 1.05:
        ax.axvline(fits, color="tab:red", ls="--", lw=1.2, label=f"predicted wall: {pred.get('first_wall')}")
    elif fits is not None:
        ax.annotate(f"predicted first wall: {pred.get('first_wall')}\nat ~{fits:,} (off the chart) ->", xy=(0.98, 0.08),
                    xycoords="axes fraction", ha="right", fontsize=8, color="tab:red")
    n_max = observed.get("n_max")
    if n_max:
        ax.axvline(n_max, color="black", ls=":", lw=1.2, label=f"observed stop: {observed.get('stop')} at {n_max}")


def density_figure(paths: Sequence[str | os.PathLike[str]], out_path: str | os.PathLike[str]) -> Path:
    """One panel per run: start latency (p50, p95) against containers or pods running, walls and stop marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [load_density(p) for p in paths]
    fig, axes = plt.subplots(1, len(runs), figsize=(6.2 * len(runs), 4.2), squeeze=False)
    for ax, run in zip(axes[0], runs, strict=True):
        frame = run.batches
        x = frame["n_running"]
        ax.plot(x, frame["latency_p50_ms"], "o-", label="p50")
        ax.plot(x, frame["latency_p95_ms"], "s--", label="p95", alpha=0.8)
        if run.mode == "pods":
            node = run.manifest.get("node", {})
            if node.get("max_pods"):
                ax.axvline(node["free_slots"], color="tab:red", ls="--", lw=1.2, label=f"maxPods {node['max_pods']} (minus pods already there)")
            ax.axhline(POD_STARTUP_SLO_MS, color="tab:orange", ls="-.", lw=1, label="5 s start-up objective (p99)")
            ax.set_xlabel("our pods Running on the node")
            ax.set_title("Kubernetes: pod create -> Ready")
        else:
            _walls_on(ax, run, float(x.max()) if len(x) else 1.0)
            ax.set_xlabel("containers running")
            ax.set_title(f"Docker, {run.mode} mode: create+start")
        ax.set_ylabel("latency of the batch's starts (ms)")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def latest_runs(root: str | os.PathLike[str]) -> list[Path]:
    """The newest finished density run of each mode under ``root`` (runtime, network, workload, pods)."""
    import json

    from scalelab.errors import RunFormatError

    newest: dict[str, tuple[str, Path]] = {}
    base = Path(root)
    for path in sorted(base.iterdir()) if base.is_dir() else []:
        try:
            manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if manifest.get("kind") != "density" or manifest.get("status") not in ("completed", "interrupted"):
            continue
        mode, start = str(manifest.get("mode")), str(manifest.get("utc_start"))
        if mode not in newest or start > newest[mode][0]:
            newest[mode] = (start, path)
    if not newest:
        raise RunFormatError(f"no density run under {base}/", fix="record one: `make lab12-run` (or `scalelab density run`)", lab="12-density")
    order = ["runtime", "network", "workload", "pods"]
    return [newest[m][1] for m in sorted(newest, key=lambda m: order.index(m) if m in order else 99)]
