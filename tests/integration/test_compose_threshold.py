"""The home-made threshold autoscaler on real compose: the ci-spike's compose-threshold arm scales up and back down by itself.

Real engine, real nginx, real Locust, real `scalelab run`; the scaler reads CPU and memory from
Docker stats and in-flight requests from each agent's /metrics (its address on the project's own
network). Load goes to 127.0.0.1 only and is bounded by the scenario (150 s).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from livekit import free_port
from test_compose_arm import _run_cli, containers_of, live_scale_compose, wait_for_samples

from scalelab.telemetry import load_run

pytestmark = pytest.mark.docker


def test_ci_spike_threshold_scales_up_and_down_by_itself(scalelab_images: str, tmp_path: Path) -> None:
    started = time.monotonic()
    proc = _run_cli(["run", "ci-spike", "--arm", "compose-threshold", "--cpu-budget", "1", "--runs-dir", str(tmp_path)], free_port())
    out, _ = proc.communicate(timeout=300)
    print(out[-3000:])
    assert proc.returncode == 0, out[-3000:]
    assert time.monotonic() - started < 240

    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    run = load_run(run_dir)
    assert run.manifest["status"] == "completed" and run.manifest["scaler"] == "threshold"
    s, ev, sc = run.samples, run.events, run.scenario
    cfg = sc.arms["compose-threshold"].scaler
    start, end = sc.load.start_s, sc.load.start_s + sc.load.length_s
    mine = ev[(ev.source == "threshold") & (ev.kind == "scale")]
    print(mine[["t_s", "replicas", "detail"]].to_string())
    ups = mine[mine.detail.str.contains("scale up")]
    downs = mine[mine.detail.str.contains("scale down")]

    # Nobody else scales; it scales up during the spike, not before.
    assert set(ev[ev.kind == "scale"].source) == {"threshold"}
    assert len(ups) >= 2 and ups.t_s.min() > start and ups.t_s.min() <= start + 10
    assert s[s.t_s < start].replicas_desired.max() == cfg.min_replicas
    assert s.replicas_desired.max() >= 4
    # Cooldowns hold between its steps.
    assert (ups.t_s.diff().dropna() >= cfg.up_cooldown_s - 0.5).all()
    # ... and back down by itself after the spike.
    assert len(downs) >= 2 and downs.t_s.min() > end
    assert s.replicas_desired.iloc[-1] < s.replicas_desired.max()
    # The figures that triggered it are recorded, in-flight included (measured from /metrics, not n/a).
    assert ups.detail.str.contains(r"in-flight \d", regex=True).all(), ups.detail.tolist()
    assert downs.detail.str.contains(r"cpu \d+\.\d < 30: yes", regex=True).all()

    assert containers_of(scalelab_images, run.manifest["platform_info"]["compose_project"]) == []


def test_ci_spike_manual_override_pauses_the_threshold_scaler(scalelab_images: str, tmp_path: Path) -> None:
    """`scalelab scale compose 3` before the spike pauses the scaler (override_pause_s, 120 s by
    default): it must not scale during the spike although CPU and in-flight are far above its rule."""
    proc = _run_cli(["run", "ci-spike", "--arm", "compose-threshold", "--cpu-budget", "1", "--runs-dir", str(tmp_path)], free_port())
    samples = wait_for_samples(tmp_path, 3, proc)
    project = live_scale_compose(samples.parent, 3)
    out, _ = proc.communicate(timeout=300)
    print(out[-3000:])
    assert proc.returncode == 0, out[-3000:]

    run = load_run(samples.parent)
    s, ev, sc = run.samples, run.events, run.scenario
    cfg = sc.arms["compose-threshold"].scaler
    start, end = sc.load.start_s, sc.load.start_s + sc.load.length_s
    (t_live,) = ev[(ev.kind == "scale") & (ev.source == "live")].t_s.tolist()
    assert t_live < start, f"the override came at {t_live} s, after the spike started"
    paused = ev[(ev.source == "threshold") & ev.detail.str.contains("paused: manual scale to 3")]
    assert len(paused) == 1 and abs(float(paused.t_s.iloc[0]) - t_live) < 3, ev.to_string()
    held = ev[(ev.source == "threshold") & (ev.kind == "scale") & (ev.t_s > t_live) & (ev.t_s < t_live + cfg.override_pause_s)]
    assert held.empty, held.to_string()
    during = s[(s.t_s >= start) & (s.t_s <= end)]
    assert (during.replicas_desired == 3).all(), during.replicas_desired.value_counts().to_dict()
    assert during.cpu_util_pct.max() > cfg.scale_up.cpu_pct  # the rule would have fired: the pause held it
    assert containers_of(scalelab_images, project) == []
