"""Rollouts under load on the real platforms (issue 14): what each way of rolling out loses.

A real ``scalelab run ci-rollout`` (steady open-loop load through the front door, two replicas,
no autoscaler, every replica moved from v1 to v2 at 15 s) per arm, then the measurements of
`scalelab.rollout.measure`:

- compose ``recreate`` (``docker compose up -d`` with the new image): compose stops the old
  containers before the new ones are healthy, so the healthy count drops below 2; the requests
  it loses are measured and printed, and every one of them fails inside the rollout;
- compose ``double-then-retire``: the new replicas are healthy before the old ones stop: the
  healthy count never drops and, at the CI load, no request is lost;
- Kubernetes ``rolling`` with readiness, a preStop sleep and the agent's SIGTERM drain: no request
  is lost at the CI load and every replica ends on v2;
- Swarm ``update`` with ``order: start-first``: each new task is healthy before its old one
  stops, so the healthy count never drops below 2 and, at the CI load, no request is lost
  (stop-first is recorded for lab 11, not run here: one swarm run is ~80 s of CI).

Every arm: requests before the rollout are answered by v1, requests after its end by v2 only.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import require_or_skip
from livekit import free_port, skip_if_in_a_swarm

from scalelab.faults.table import render
from scalelab.rollout.__main__ import COLUMNS
from scalelab.rollout.measure import RolloutImpact, rollout_impacts, rollout_rows
from scalelab.telemetry import load_run
from scalelab.versions import AGENT_IMAGE, AGENT_IMAGE_V2

REPO = Path(__file__).resolve().parents[2]
SCALELAB = [sys.executable, "-m", "scalelab"]
ROLLOUT_AT_S = 15.0
TIMEOUT_S = 5.0  # ci-rollout's workload.timeout_s: a request sent just before the end may fail this much later


def _run(args: list[str], runs: Path, env: dict[str, str] | None = None):
    cmd = [*SCALELAB, "run", "ci-rollout", "--cpu-budget", "1", "--runs-dir", str(runs), *args]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    (run_dir,) = [p for p in runs.iterdir() if p.is_dir()]
    run = load_run(run_dir)
    impacts = rollout_impacts(run.requests.to_dict("records"), run.events.to_dict("records"), run.samples.to_dict("records"),
                              sample_offset_s=float(run.manifest.get("sample_offset_s", 0.4)))
    print("\n" + render(rollout_rows(run.manifest["platform"], impacts), COLUMNS))
    print("\n".join(f"  {e.t_s:7.2f} {e.kind:14} {e.detail}" for e in run.events.itertuples() if str(e.kind).startswith(("rollout", "replica_"))))
    assert run.manifest["status"] == "completed"
    (imp,) = impacts
    assert abs(imp.t_start_s - ROLLOUT_AT_S) <= 1.0, imp
    assert imp.ok and imp.wall_s is not None, imp.detail
    assert AGENT_IMAGE_V2 in imp.detail and "replicas=2 on" in imp.detail, imp.detail
    _versions_switch(run, imp)
    return run, imp


def _versions_switch(run, imp: RolloutImpact) -> None:
    """v1 answers before the rollout, v2 only after its end, and every failure inside the rollout."""
    req = run.requests
    ok = req[req.ok.astype(int) == 1]
    assert set(ok[ok.t_s < imp.t_start_s].version) == {"v1"}
    late = ok[ok.t_s > imp.t_start_s + imp.wall_s + TIMEOUT_S]
    assert len(late) > 10 and set(late.version) == {"v2"}, "an old replica still answered after the rollout ended"
    assert imp.old_after_end == 0 or (imp.last_old_s or 0) <= imp.wall_s + TIMEOUT_S
    failed = req[req.ok.astype(int) == 0]
    outside = failed[(failed.t_s < imp.t_start_s) | (failed.t_s > imp.t_start_s + imp.wall_s + TIMEOUT_S)]
    assert outside.empty, f"failures outside the rollout:\n{outside.head(10)}"


def _no_leftovers(run) -> None:
    project = run.manifest["platform_info"]["compose_project"]
    out = subprocess.run(["docker", "ps", "-a", "-q", "--filter", f"label=com.docker.compose.project={project}"], capture_output=True, text=True, check=True).stdout.split()
    assert out == [], "the run left containers behind"


@pytest.fixture(scope="module")
def v2_image(scalelab_images: str) -> str:
    proc = subprocess.run(["docker", "image", "inspect", AGENT_IMAGE_V2], capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        require_or_skip(f"image {AGENT_IMAGE_V2} is not built (run `make image`)")
    return AGENT_IMAGE_V2


@pytest.mark.docker
@pytest.mark.slow
def test_compose_recreate_stops_before_it_starts(v2_image: str, tmp_path: Path) -> None:
    run, imp = _run(["--arm", "compose-recreate"], tmp_path, {"SCALELAB_PORT": str(free_port())})
    assert imp.strategy == "recreate" and imp.ready_before == 2
    assert imp.ready_min is not None and imp.ready_min < 2, "compose recreate kept every replica healthy: it has no start-first order"
    ev = run.events
    stops = ev[(ev.kind == "replica_stop") & (ev.t_s >= imp.t_start_s)]
    assert len(stops) == 2, "both v1 containers must be replaced"
    print(f"compose recreate: {imp.failed} of {imp.requests} requests failed ({imp.by_class}), error window {imp.error_window_s} s, wall {imp.wall_s} s")
    _no_leftovers(run)


@pytest.mark.docker
@pytest.mark.slow
def test_compose_double_then_retire_loses_nothing(v2_image: str, tmp_path: Path) -> None:
    run, imp = _run(["--arm", "compose-double"], tmp_path, {"SCALELAB_PORT": str(free_port())})
    assert imp.strategy == "double-then-retire" and imp.ready_before == 2
    assert imp.ready_min is not None and imp.ready_min >= 2, "the old replicas stopped before the new ones were healthy"
    assert imp.failed == 0, f"{imp.failed} requests lost: {imp.by_class}"
    assert imp.answered_new > 0 and imp.answered_old > 0
    _no_leftovers(run)


@pytest.mark.cluster
@pytest.mark.slow
def test_kubernetes_rolling_update_with_readiness_prestop_and_drain_loses_nothing(test_cluster, v2_image: str, tmp_path: Path) -> None:
    if (test_cluster.logs_dir.parent / "pids" / "containerd.pid").is_file():  # the local test cluster: the images as built (a no-op once imported)
        subprocess.run(["bash", str(REPO / "tests/cluster/cluster.sh"), "load", AGENT_IMAGE, v2_image], check=True, capture_output=True, text=True, timeout=300)
    run, imp = _run(["--arm", "kubernetes-rolling", "--kubeconfig", str(test_cluster.kubeconfig), "--context", test_cluster.context], tmp_path)
    assert imp.strategy == "rolling" and imp.ready_before == 2
    assert imp.ready_min is not None and imp.ready_min >= 2, "maxUnavailable 0: the ready count must never drop"
    assert imp.failed == 0, f"{imp.failed} requests lost: {imp.by_class}"
    assert "replicas=2 on " + v2_image + ", 0 on other images" in imp.detail
    rendered = (Path(run.path) / "k8s-rendered.yaml").read_text()
    assert "preStop" in rendered and "maxUnavailable: 0" in rendered


@pytest.mark.docker
@pytest.mark.slow
def test_swarm_start_first_update_keeps_two_healthy_and_loses_nothing(v2_image: str, tmp_path: Path) -> None:
    skip_if_in_a_swarm()
    run, imp = _run(["--arm", "swarm-start-first"], tmp_path, {"SCALELAB_SWARM_PORT": str(free_port())})
    assert imp.strategy == "update" and imp.ready_before == 2
    assert imp.ready_min is not None and imp.ready_min >= 2, "start-first let the healthy count drop"
    assert imp.failed == 0, f"{imp.failed} requests lost: {imp.by_class}"
    assert run.manifest["platform_info"]["update_config"]["Order"] == "start-first"
    left = subprocess.run(["docker", "ps", "-a", "-q", "--filter", f"label=com.docker.stack.namespace={run.manifest['platform_info']['swarm_stack']}"],
                          capture_output=True, text=True, check=True).stdout.split()
    assert left == [], "the run left task containers behind"
