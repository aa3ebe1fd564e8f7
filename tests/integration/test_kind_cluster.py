"""The students' own path, for real: `scalelab cluster up` creates the 3-node kind cluster
(k8s/kind-cluster.yaml) from the node image built here without a registry
(`make kind-node-image`), loads the agent image, installs metrics-server; the shortened HPA spike
runs on it through the NodePort on 127.0.0.1; then, in the same cluster, lab 09's node loss
(`ci-node-loss`: two hosts capped onto the two workers, four replicas spread over them, host B's
node container killed) is survived with measured recovery; `scalelab cluster down` deletes it.

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
from conftest import lost_from, require_or_skip

from scalelab import kind_node
from scalelab.faults.measure import fault_impacts
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
    assert "--node-monitor-grace-period=30s" in cm
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


#: k8s/kind-cluster.yaml: a node is NotReady 30 s after its last lease renewal (renewed every 10 s)
GRACE_S = 30


@pytest.fixture(scope="module")
def kind_node_loss_run(kind_cluster, tmp_path_factory):
    runs = tmp_path_factory.mktemp("kind-node-loss")
    started = time.monotonic()
    proc = _scalelab("run", "ci-node-loss", "--arm", "kubernetes-fixed", "--context", KIND_CONTEXT, "--runs-dir", str(runs), timeout=300)
    print(f"ci-node-loss on kind: {time.monotonic() - started:.0f} s")
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    print(proc.stdout[-1500:])
    (run_dir,) = [p for p in runs.iterdir() if p.is_dir()]
    return load_run(run_dir)


def test_node_loss_on_kind_is_survived_with_measured_recovery(kind_node_loss_run):
    run = kind_node_loss_run
    assert run.manifest["status"] == "completed"
    w1, w2 = f"{KIND_CLUSTER}-worker", f"{KIND_CLUSTER}-worker2"
    assert [(h["host"], h["node"]) for h in run.manifest["platform_info"]["hosts"]] == [("A", w1), ("B", w2)]
    (fault,) = run.events[run.events.kind == "fault"].itertuples()
    t_f = float(fault.t_s)
    assert "node-loss host=B" in fault.detail and f"docker kill {w2}" in fault.detail
    # Before the loss the scheduler spread the four replicas over both capped workers (hosts.csv, placement.csv).
    # Row t_s = k is observed at k + sample_offset_s (0.4 s) or later, and a fault fires between two observations once it
    # is due: the rows observed before the kill are exactly those with k + offset < the fault's scheduled time.
    offset = float(run.manifest.get("sample_offset_s", 0.4))
    at = float(run.scenario.faults[0].at_s)
    h = run.hosts
    before = h[(h.t_s >= at - 4) & (h.t_s + offset < at)]
    assert set(before.host) == {"A", "B"} and (before.up == 1).all() and (before.replicas == 2).all(), before
    assert (h.cpu_limit_cores == 0.5).all(), "each worker carries its host's sized cap (2 cores at budget 4 -> 0.5 at 1)"
    # Over three seconds: a row read late leaves the next one a fraction of a second, too short for the 100 ms CFS periods.
    used = h.groupby("host").cpu_cores.transform(lambda x: x.rolling(3, center=True, min_periods=2).mean()).dropna()
    assert len(used) > 20 and (used <= 0.5 * 1.3).all(), f"a worker used more than its cap: {used.max():.2f} cores"
    p = run.placement
    assert set(p[p.t_s + offset < at].node.dropna()) == {w1, w2}
    b = h[h.host == "B"].set_index("t_s")
    down = lost_from(b.up, t_f)
    assert (b.loc[b.index >= down, "replicas"] == 0).all()
    # Kubernetes' own recovery, as measured (scalelab.faults): NotReady after the grace period, replacements on A.
    (imp,) = fault_impacts(run.requests.to_dict("records"), run.events.to_dict("records"), run.samples.to_dict("records"),
                           sample_offset_s=offset)
    print(f"node loss: NotReady {imp.to_node_down_s} s, replacement {imp.to_replacement_s} s, ready {imp.to_ready_s} s, "
          f"first 2xx {imp.to_first_2xx_s} s, ready back to {imp.ready_before} {imp.to_desired_s} s; failed {imp.failed}/{imp.requests}")
    assert imp.kind == "node-loss" and imp.ready_before == 4
    assert imp.to_node_down_s is not None and GRACE_S - 12 <= imp.to_node_down_s <= GRACE_S + 12, imp
    assert imp.to_replacement_s is not None and imp.to_replacement_s > imp.to_node_down_s, "replaced before the node was NotReady"
    assert imp.to_first_2xx_s is not None and imp.to_desired_s is not None, imp
    ev = run.events
    starts = ev[(ev.kind == "replica_start") & (ev.t_s > t_f)]
    assert len(starts) == 2 and starts.detail.str.endswith(f"on {w1}").all(), starts
    last = run.samples.iloc[-1]
    assert int(last.replicas_ready) == 4, "the ready replicas did not come back to 4 on host A"
    # The end of the run lifted the caps and started host B's node container again.
    state = subprocess.run(["docker", "inspect", "--format", "{{.State.Running}} {{.HostConfig.CpuQuota}}", w1, w2],
                           capture_output=True, text=True, timeout=60, check=True).stdout.split("\n")
    assert [line.split() for line in state if line] == [["true", "-1"], ["true", "-1"]], state
