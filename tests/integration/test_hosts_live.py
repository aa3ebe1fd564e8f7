"""Compose on Host A (issue 17), for real: two Docker-in-Docker hosts capped at 0.8 CPU each, the
compose project on Host A's own daemon, real nginx, real Locust through 127.0.0.1, `scalelab run`.

What it shows: compose talks to ONE daemon, so all ten replicas run on Host A, which works at its
cap (the inner containers are bound by it: without the nesting, Host A's cgroup would count none
of their CPU), while Host B, as big, idles, until the kit stops it (fault node-loss at 30 s), which
compose does not notice. Afterwards no host container, volume or network is left.
Traffic goes only to 127.0.0.1; the load is bounded by the scenario (50 s).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import lost_from
from livekit import free_port

from scalelab.hosts import dind
from scalelab.telemetry import load_run

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[2]


def _left(what: str, owner: str) -> list[str]:
    argv = ["docker", what, "ls", "--quiet", "--filter", f"label={dind.OWNER_LABEL}={owner}"]
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.split()


def test_compose_piles_onto_host_a_while_host_b_idles(scalelab_images: str, tmp_path: Path) -> None:
    started = time.monotonic()
    env = {**os.environ, "SCALELAB_PORT": str(free_port())}
    argv = [sys.executable, "-m", "scalelab", "run", "ci-hosts", "--arm", "compose-fixed", "--cpu-budget", "1", "--runs-dir", str(tmp_path)]
    proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    print(out[-3000:])
    assert proc.returncode == 0, out[-3000:]
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    run = load_run(run_dir)
    assert run.manifest["status"] == "completed"
    info = run.manifest["platform_info"]
    assert [h["name"] for h in info["hosts"]] == ["A", "B"] and info["compose_host"] == "A"

    # every replica on Host A, at every second
    placement = run.placement
    assert len(placement) and set(placement["node"].astype(str)) == {"A"}
    hosts = run.hosts
    a, b = (hosts[hosts["host"] == name].set_index("t_s") for name in ("A", "B"))
    assert a["replicas"].max() == 10 and b["replicas"].max() == 0
    # Host B lost at 30 s (node-loss): down from then on; Host A and its replicas carry on
    (stop,) = run.events[run.events["kind"] == "fault"]["t_s"]
    assert 30 <= stop < 32 and (a["up"] == 1).all()
    # (second k is sampled at k + 0.4 s; the stop shows once the killed host's cgroup is gone, a moment after the kill)
    assert (b.loc[b.index < stop - 1, "up"] == 1).all()
    lost_from(b["up"], stop)
    assert a.loc[a.index > stop, "replicas"].min() == 10

    # steady load from 10 s to the end of the load: Host A near its cap, never much above it; Host B near zero while up
    steady = [t for t in a.index if 10 <= t <= run.scenario.duration_s]
    a_pct = (pd.to_numeric(a.loc[steady, "cpu_cores"]) / a.loc[steady, "cpu_limit_cores"] * 100).rolling(3, center=True, min_periods=1).mean()
    b_up = [t for t in steady if t < stop]
    b_pct = pd.to_numeric(b.loc[b_up, "cpu_cores"]) / b.loc[b_up, "cpu_limit_cores"] * 100
    print(f"Host A: median {a_pct.median():.1f}% of its cap, max {a_pct.max():.1f}%; Host B: median {b_pct.median():.1f}%")
    assert a_pct.median() >= 70, f"Host A at {a_pct.median():.0f}% of its cap: the replicas' CPU escapes it, or the load did not arrive"
    assert a_pct.max() <= 112, f"Host A at {a_pct.max():.0f}% of its cap: the cap does not bind"
    assert b_pct.median() <= 5
    assert run.samples["rps"].sum() > 100, "requests went through Host A's front door on 127.0.0.1"

    # cleanup: nothing of this run's hosts is left
    owner = run.manifest["run_id"]
    assert dind.kit_hosts(owner) == [] and _left("volume", owner) == [] and _left("network", owner) == []
    assert not (dind.cache_dir() / "hosts" / dind.owner_key(owner)).exists()
    assert time.monotonic() - started < 150
