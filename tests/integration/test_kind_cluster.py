"""The students' own path, for real: `scalelab cluster up` creates the 3-node kind cluster
(k8s/kind-cluster.yaml) from the node image built here without a registry
(`make kind-node-image`), loads the agent image, installs metrics-server; the shortened HPA spike
runs on it through the NodePort on 127.0.0.1; `scalelab cluster down` deletes it.

Needs the Docker engine, kind and a node image (the locally built one, or the published one
already in Docker). Skips with a reason on a laptop without them, fails in CI. The engine must
accept kind's `--privileged` node containers (on scalelab's CI machine: .ci/engine-runtime.sh).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import require_or_skip

from scalelab import kind_node
from scalelab.platforms.k8s_client import KIND_CLUSTER, KIND_CONTEXT
from scalelab.telemetry.store import load_run

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
#: Issue 17's target with a warm cache is 3 minutes; leave headroom for a loaded CI machine.
CREATE_LIMIT_S = 300


def _scalelab(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "scalelab", *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env={**os.environ, "PYTHONUNBUFFERED": "1"})


@functools.cache
def _kubectl_path() -> str | None:
    """The kit's kubectl 1.34 (tests/cluster/build.sh), else one on PATH."""
    proc = subprocess.run(["bash", str(ROOT / "tests/cluster/build.sh"), "bindir"], capture_output=True, text=True, timeout=60)
    built = Path(proc.stdout.strip()) / "kubectl"
    return str(built) if proc.returncode == 0 and built.is_file() else shutil.which("kubectl")


def _kubectl(*args: str) -> str:
    kubectl = _kubectl_path()
    assert kubectl is not None
    return subprocess.run([kubectl, "--context", KIND_CONTEXT, *args], capture_output=True, text=True, timeout=60, check=True).stdout


@pytest.fixture(scope="module")
def kind_cluster(docker_engine, scalelab_images):
    kind_node.ensure_kind_on_path(print)
    if shutil.which("kind") is None:
        require_or_skip("`kind` is not on PATH (`bash tests/cluster/build.sh node` builds it from the Go module proxy)")
    if _kubectl_path() is None:
        require_or_skip("no kubectl (`bash tests/cluster/build.sh kubernetes` builds it)")
    image = kind_node.choose_node_image(None)
    if not kind_node.local_image_present(image):
        require_or_skip(f"no kind node image in Docker ({image}): build one with `make kind-node-image`")
    if subprocess.run(["kind", "get", "clusters"], capture_output=True, text=True, timeout=60).stdout.split().count(KIND_CLUSTER):
        require_or_skip(f"a kind cluster '{KIND_CLUSTER}' already exists (someone's lab cluster): not touching it")
    network_before = subprocess.run(["docker", "network", "inspect", "kind"], capture_output=True, timeout=60).returncode == 0
    started = time.monotonic()
    proc = _scalelab("cluster", "up", timeout=CREATE_LIMIT_S + 300)
    elapsed = time.monotonic() - started
    print(f"scalelab cluster up ({image}): {elapsed:.0f} s\n{proc.stderr[-2000:]}")
    try:
        assert proc.returncode == 0, f"scalelab cluster up failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        yield {"image": image, "up_s": elapsed}
    finally:
        down = _scalelab("cluster", "down", timeout=300)
        assert down.returncode == 0, down.stderr[-2000:]
        names = subprocess.run(["docker", "ps", "-a", "--filter", f"label=io.x-k8s.kind.cluster={KIND_CLUSTER}", "--format", "{{.Names}}"],
                               capture_output=True, text=True, timeout=60).stdout.split()
        assert names == [], f"kind node containers left behind: {names}"
        network_after = subprocess.run(["docker", "network", "inspect", "kind"], capture_output=True, timeout=60).returncode == 0
        # The kit removes the `kind` network it created, and leaves one that was there before.
        assert network_after == network_before, f"kind network before: {network_before}, after: {network_after}"


def test_cluster_up_makes_three_ready_nodes_quickly(kind_cluster):
    assert kind_cluster["up_s"] < CREATE_LIMIT_S, f"cluster up took {kind_cluster['up_s']:.0f} s"
    rows = _kubectl("get", "nodes", "--no-headers", "-o",
                    "custom-columns=NAME:.metadata.name,READY:.status.conditions[?(@.type=='Ready')].status,VERSION:.status.nodeInfo.kubeletVersion").split("\n")
    nodes = [r.split() for r in rows if r.strip()]
    assert sorted(n[0] for n in nodes) == [f"{KIND_CLUSTER}-control-plane", f"{KIND_CLUSTER}-worker", f"{KIND_CLUSTER}-worker2"]
    assert all(n[1] == "True" for n in nodes), nodes
    assert all(n[2].startswith("v1.34.") for n in nodes), nodes
    # The classroom controller profile from k8s/kind-cluster.yaml reached the controller-manager.
    cm = _kubectl("-n", "kube-system", "get", "pod", "-l", "component=kube-controller-manager", "-o", "jsonpath={.items[0].spec.containers[0].command}")
    assert "--horizontal-pod-autoscaler-sync-period=5s" in cm and "--horizontal-pod-autoscaler-downscale-stabilization=30s" in cm
    # CoreDNS (built here) serves, and every system pod runs.
    pods = _kubectl("get", "pods", "-A", "--no-headers", "-o", "custom-columns=NAME:.metadata.name,PHASE:.status.phase").split("\n")
    assert all(p.split()[1] == "Running" for p in pods if p.strip()), pods
    assert sum(p.startswith("coredns-") for p in pods) == 2


@pytest.fixture(scope="module")
def kind_spike_run(kind_cluster, tmp_path_factory):
    runs = tmp_path_factory.mktemp("kind-runs")
    proc = _scalelab("run", "ci-spike", "--arm", "kubernetes-hpa", "--context", KIND_CONTEXT, "--runs-dir", str(runs), timeout=420)
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    (run_dir,) = [p for p in runs.iterdir() if p.is_dir()]
    return load_run(run_dir)


def test_ci_spike_on_kind_scales_and_spreads_over_the_workers(kind_spike_run):
    run = kind_spike_run
    assert run.manifest["status"] == "completed" and run.manifest["platform"] == "kubernetes"
    s, load = run.samples, run.scenario.load
    end = load.start_s + load.length_s
    initial = int(s.replicas_desired.iloc[0])
    peak = int(s.replicas_desired.max())
    assert peak > initial, "the HPA never scaled up on kind"
    assert s.hpa_util_pct.notna().sum() > len(s) / 2, "metrics-server did not feed the HPA"
    after = s[s.t_s >= end]
    assert int(after.replicas_desired.iloc[-1]) < peak, "the HPA did not scale back down after the spike"
    nodes = set(run.placement.node.dropna())
    assert {f"{KIND_CLUSTER}-worker", f"{KIND_CLUSTER}-worker2"} <= nodes, f"replicas did not spread over both workers: {nodes}"
