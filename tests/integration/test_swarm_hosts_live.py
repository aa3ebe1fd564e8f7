"""A swarm over two Docker-in-Docker hosts loses one (issue 17): a real ``scalelab run ci-swarm-hosts``.

The engine is the manager (its nginx on 127.0.0.1 is the only door), hosts A and B are the
workers; six tasks spread over both. At 15 s Host B's container stops: Swarm marks B down when
its heartbeats stop, and starts the replacements on A. Traffic goes only to 127.0.0.1 and, inside
the overlay, between the engine and the kit's host containers. The test leaves the engine as it
found it: no host, no stack, no swarm.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from livekit import docker, free_port, skip_if_in_a_swarm, swarm_state

from scalelab.faults.measure import fault_impacts, impact_rows
from scalelab.faults.table import render
from scalelab.telemetry import load_run

pytestmark = [pytest.mark.docker, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
FAULT_AT_S = 15.0
REPLICAS = 6


def test_tasks_spread_over_two_hosts_and_move_to_the_survivor_when_one_is_lost(scalelab_images: str, tmp_path: Path) -> None:
    skip_if_in_a_swarm()
    gw_before = bool(docker("network", "ls", "-q", "--filter", "name=docker_gwbridge").split())
    cmd = [sys.executable, "-m", "scalelab", "run", "ci-swarm-hosts", "--arm", "swarm-hosts", "--cpu-budget", "1", "--runs-dir", str(tmp_path)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=400,
                          env={**os.environ, "PYTHONUNBUFFERED": "1", "SCALELAB_SWARM_PORT": str(free_port())})
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    run = check_run(run_dir)
    run_id = run.manifest["run_id"]

    # Cleanup: no host container, volume or network of this run, no stack, the engine in no swarm again.
    assert docker("ps", "-a", "-q", "--filter", f"label=scalelab.host-owner={run_id}") == ""
    assert docker("volume", "ls", "-q", "--filter", f"label=scalelab.host-owner={run_id}") == ""
    assert docker("network", "ls", "-q", "--filter", f"label=scalelab.host-owner={run_id}") == ""
    stack = run.manifest["platform_info"]["swarm_stack"]
    assert docker("ps", "-a", "-q", "--filter", f"label=scalelab.stack={stack}") == ""
    assert swarm_state() == "inactive"
    assert bool(docker("network", "ls", "-q", "--filter", "name=docker_gwbridge").split()) == gw_before


def check_run(run_dir: Path) -> Any:
    """The recorded run's story: spread over A and B, B lost, Swarm's verdict, all on A and ready again."""
    run = load_run(run_dir)
    assert run.manifest["status"] == "completed"

    # Before the loss: the tasks run on both hosts, none on the engine (the manager).
    place = run.placement
    before = place[place.t_s == int(FAULT_AT_S) - 1]
    spread = Counter(before.node)
    print("tasks per host before the loss:", dict(spread))
    assert set(spread) == {"A", "B"} and sum(spread.values()) == REPLICAS and min(spread.values()) >= 2, spread

    # The loss, Swarm's verdict, the replacements, all on one time axis.
    ev = run.events
    (fault,) = ev[ev.kind == "fault"].itertuples()
    assert abs(fault.t_s - FAULT_AT_S) <= 1.0 and "host=B" in fault.detail, fault
    down = ev[(ev.kind == "node") & (ev.detail == "B down")]
    assert len(down) == 1 and down.t_s.iloc[0] > fault.t_s, ev[ev.kind == "node"]
    (imp,) = fault_impacts(run.requests.to_dict("records"), ev.to_dict("records"), run.samples.to_dict("records"),
                           sample_offset_s=float(run.manifest.get("sample_offset_s", 0.4)))
    print("\n" + render(impact_rows("swarm", [imp])))
    assert imp.kind == "node-loss" and imp.ready_before == REPLICAS and imp.ready_min is not None and imp.ready_min <= REPLICAS - spread["B"]
    assert imp.to_node_down_s is not None and imp.to_replacement_s is not None and imp.to_desired_s is not None, imp
    assert imp.to_node_down_s <= imp.to_replacement_s + 1.0 <= imp.to_desired_s + 1.0, imp  # nothing moves before Swarm gives up on B

    # After: every task on the survivor, and ready; B is down in hosts.csv, A carries them all.
    last = place[place.t_s == place.t_s.max()]
    print("tasks per host at the end:", dict(Counter(last.node)))
    assert list(Counter(last.node).items()) == [("A", REPLICAS)] and int(last.ready.sum()) == REPLICAS, last
    hosts = run.hosts
    end = hosts[hosts.t_s == hosts.t_s.max()].set_index("host")
    assert int(end.loc["B", "up"]) == 0 and int(end.loc["A", "up"]) == 1 and int(end.loc["A", "replicas"]) == REPLICAS, end
    assert float(end.loc["A", "cpu_limit_cores"]) == pytest.approx(0.8)
    # The front door kept answering from the survivors and then from the replacements.
    late = run.requests[run.requests.t_s > FAULT_AT_S + (imp.to_desired_s or 0) + 3.0]
    assert len(late) > 10 and late.ok.astype(int).mean() >= 0.9, late[late.ok.astype(int) == 0].head()

    return run
