"""Lab 12 (density): wall prediction from recorded limit sets, batch sizes, stop rules, /proc readers.

Hermetic: limit sets are JSON files under tests/fixtures/density/limits (``reference-vm.json``
was read on the kit's reference VM with ``scalelab density plan --json``; the ``*.handwritten``
ones change one limit each to the value a laptop, an old distro or a busy host has).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scalelab.density import containers, host, plan
from scalelab.density.ramp import StopRules, batch_sizes, percentile

LIMITS = Path(__file__).resolve().parents[1] / "fixtures" / "density" / "limits"
GiB = 1024**3


def limits(name: str) -> plan.HostLimits:
    return plan.HostLimits.from_dict(json.loads((LIMITS / name).read_text()))


# (limit set, mode, first wall, containers until it, budget with cap 300, what stops the ramp)
CASES = [
    ("reference-vm.json", "runtime", "tasks (kernel.pid_max)", 2629, 300, "cap"),
    ("reference-vm.json", "network", "ports on one bridge", 1023, 300, "cap"),
    ("reference-vm.json", "workload", "ports on one bridge", 1023, 299, "memory floor"),
    ("laptop-cgroupv2.handwritten.json", "runtime", "inotify instances (root)", 88, 88, "inotify instances (root)"),
    ("nofile-1024.handwritten.json", "runtime", "dockerd open files", 24, 24, "dockerd open files"),
    ("busy-pid-max.handwritten.json", "runtime", "tasks (kernel.pid_max)", 142, 142, "tasks (kernel.pid_max)"),
    ("leaked-memcg.handwritten.json", "runtime", "memcg IDs", 135, 135, "memcg IDs"),
    ("docker-desktop.handwritten.json", "runtime", "tasks (kernel.pid_max)", 2629, 300, "cap"),
    ("low-memory.handwritten.json", "runtime", "tasks (kernel.pid_max)", 2629, 165, "memory floor"),
    ("low-memory.handwritten.json", "workload", "ports on one bridge", 1023, 8, "memory floor"),
]


@pytest.mark.parametrize(("name", "mode", "wall", "fits", "budget", "stops_at"), CASES, ids=[f"{c[0].split('.')[0]}-{c[1]}" for c in CASES])
def test_first_wall_from_a_recorded_limit_set(name: str, mode: str, wall: str, fits: int, budget: int, stops_at: str) -> None:
    p = plan.predict(limits(name), mode, cap=300)
    assert (p.first.name, p.first.fits) == (wall, fits)
    assert (p.budget, p.stops_at) == (budget, stops_at)
    assert p.first.error.startswith("`") or "kernel" in p.first.error, "the wall names the exact error it produces"


def test_walls_name_the_error_and_the_change_but_the_plan_changes_nothing() -> None:
    p = plan.predict(limits("reference-vm.json"), "network", cap=300)
    bridge = next(w for w in p.walls if w.name == "ports on one bridge")
    assert "exchange full" in bridge.error and "several networks" in bridge.change
    pid = next(w for w in p.walls if w.name == "tasks (kernel.pid_max)")
    assert "resource temporarily unavailable" in pid.error and pid.change == "sysctl -w kernel.pid_max=4194304"
    text = plan.render_plan(limits("reference-vm.json"), [p])
    assert "the kit never does" in text and "budget: 300 containers" in text and "first wall: ports on one bridge after ~1,023" in text


def test_runtime_mode_has_no_network_walls_and_desktop_no_daemon_walls() -> None:
    names = {w.name for w in plan.predict(limits("reference-vm.json"), "runtime").applicable}
    assert "ports on one bridge" not in names and "neighbour table (gc_thresh3)" not in names
    desktop = {w.name for w in plan.predict(limits("docker-desktop.handwritten.json"), "runtime").applicable}
    assert not any("open files" in n for n in desktop)
    assert "Docker Desktop" in plan.render_plan(limits("docker-desktop.handwritten.json"), [])


def test_inotify_counts_only_on_cgroup_v2() -> None:
    v1 = plan.predict(limits("reference-vm.json"), "runtime")
    v2 = plan.predict(limits("laptop-cgroupv2.handwritten.json"), "runtime")
    assert "inotify instances (root)" not in {w.name for w in v1.applicable}
    assert v2.costs.inotify == 1.0


def test_measured_costs_move_the_wall() -> None:
    lim = limits("reference-vm.json")
    heavier = plan.Costs(tasks=26, memory_bytes=14 * 1024**2, dockerd_fds=1, containerd_fds=2, inotify=0)
    assert plan.predict(lim, "runtime", costs=heavier).first.fits == (32768 - 163) // 26


def test_memory_floor_is_20_percent_or_2_gib() -> None:
    assert plan.memory_floor_bytes(24 * GiB) == int(0.2 * 24 * GiB)
    assert plan.memory_floor_bytes(4 * GiB) == 2 * GiB


def test_limit_sets_round_trip() -> None:
    lim = limits("reference-vm.json")
    assert plan.HostLimits.from_dict(json.loads(plan.limits_json(lim))) == lim


@pytest.mark.parametrize(("first", "growth", "cap", "expected"), [
    (10, 1.5, 300, [10, 15, 23, 35, 53, 80, 84]),
    (20, 1.5, 100, [20, 30, 45, 5]),
    (10, 1.0, 35, [10, 11, 12, 2]),
    (50, 2.0, 30, [30]),
])
def test_batch_sizes(first: int, growth: float, cap: int, expected: list[int]) -> None:
    sizes = list(batch_sizes(first, growth, cap))
    assert sizes == expected and sum(sizes) == cap


def test_percentile_nearest_rank() -> None:
    assert percentile([], 50) is None
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([float(i) for i in range(1, 101)], 95) == 95.0
    assert percentile([5.0], 99) == 5.0


def _row(**kw: object) -> dict[str, object]:
    row: dict[str, object] = {"failed": 0, "mem_available_mb": 20000.0, "latency_p50_ms": 100.0, "load1": 1.0, "n_running": 10}
    row.update(kw)
    return row


def rules(**kw: object) -> StopRules:
    base: dict[str, object] = {"cap": 300, "mem_floor_bytes": 4 * GiB, "load_limit": 8.0, "budget_s": 600.0}
    base.update(kw)
    return StopRules(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(("row", "elapsed", "expected"), [
    (_row(), 10, None),
    (_row(failed=1), 10, "error"),
    (_row(mem_available_mb=3000.0), 10, "memory"),
    (_row(load1=9.5), 10, "load"),
    (_row(n_running=300), 10, "cap"),
    (_row(), 599, "budget"),
    (_row(failed=2, n_running=300), 10, "error"),  # an error wins over the cap
])
def test_stop_rules(row: dict[str, object], elapsed: float, expected: str | None) -> None:
    r = rules()
    r.baseline_ms = 100.0
    assert r.check(row, elapsed, next_batch_s=5.0) == expected


def test_load_limit_allows_for_a_host_that_was_busy_before() -> None:
    from scalelab.density.ramp import default_load_limit

    assert default_load_limit(2, 0.5) == 8.0
    assert default_load_limit(2, 6.0) == 10.0


def test_latency_rule_needs_two_slow_batches_in_a_row() -> None:
    r = rules()
    assert r.check(_row(latency_p50_ms=50.0), 1) is None  # baseline = first batch's median
    assert r.check(_row(latency_p50_ms=600.0), 2) is None  # 12x once
    assert r.check(_row(latency_p50_ms=100.0), 3) is None  # back under: the count restarts
    assert r.check(_row(latency_p50_ms=600.0), 4) is None
    assert r.check(_row(latency_p50_ms=700.0), 5) == "latency"


# --- /proc and /sys readers on a recorded tree ----------------------------------------------------


def _fake_proc(root: Path) -> Path:
    proc = root / "proc"
    (proc / "net").mkdir(parents=True)
    (proc / "meminfo").write_text("MemTotal:       24683664 kB\nMemAvailable:   23794284 kB\nHugePages_Total:       0\n")
    (proc / "loadavg").write_text("0.42 0.30 0.20 3/151 31300\n")
    (proc / "cgroups").write_text("#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpu\t1\t2\t1\nmemory\t4\t56\t1\n")
    (proc / "net" / "arp").write_text("IP address HW type Flags HW address Mask Device\n192.0.2.1 0x1 0x2 02:fc:00:00:00:05 * eth0\n")
    shim = proc / "4242"
    (shim / "fd").mkdir(parents=True)
    (shim / "comm").write_text("containerd-shim\n")
    (shim / "cmdline").write_bytes(b"/usr/bin/containerd-shim-runc-v2\0-namespace\0moby\0-id\0abc123\0-address\0/run/c.sock\0")
    (shim / "status").write_text("Name:\tcontainerd-shim\nThreads:\t11\nVmRSS:\t    7168 kB\n")
    (shim / "stat").write_text("4242 (containerd-shim) S 1 4242 4242 0 -1 4194560 1 0 0 0 150 50 0 0 20 0 11 0 1 1 1\n")
    (shim / "limits").write_text("Limit Soft Hard Units\nMax open files            20000                20000                files\n")
    (shim / "smaps_rollup").write_text("Rss: 7168 kB\nPss: 2048 kB\n")
    for i in range(3):
        (shim / "fd" / str(i)).write_text("")
    return proc


def test_proc_readers(tmp_path: Path) -> None:
    proc = _fake_proc(tmp_path)
    assert host.meminfo(proc)["MemAvailable"] == 23794284 * 1024
    assert host.loadavg(proc) == (0.42, 151)
    assert host.memcg_count(proc) == 56
    assert host.arp_entries(proc) == 1
    assert host.shim_processes({"abc123", "zzz"}, proc) == {"abc123": 4242}
    assert host.find_process("containerd-shim", proc) == 4242
    figs = host.process_figures(4242, proc, with_pss=True)
    assert figs is not None
    assert (figs.rss_bytes, figs.pss_bytes, figs.threads, figs.fds, figs.nofile_limit) == (7168 * 1024, 2048 * 1024, 11, 3, 20000)
    assert figs.cpu_s == pytest.approx(2.0 * 100 / host.clock_ticks())


def test_cgroup_version_and_leftover_cgroups(tmp_path: Path) -> None:
    sys_root = tmp_path / "sys"
    (sys_root / "fs" / "cgroup" / "memory" / "docker" / "abc123").mkdir(parents=True)
    assert host.cgroup_version(sys_root) == 1
    assert host.cgroup_dirs(["abc123", "def456"], sys_root) == [str(sys_root / "fs/cgroup/memory/docker/abc123")]
    v2 = tmp_path / "v2"
    (v2 / "fs" / "cgroup" / "system.slice" / "docker-def456.scope").mkdir(parents=True)
    (v2 / "fs" / "cgroup" / "cgroup.controllers").write_text("cpu memory pids\n")
    assert host.cgroup_version(v2) == 2
    assert host.cgroup_dirs(["def456"], v2) == [str(v2 / "fs/cgroup/system.slice/docker-def456.scope")]


def test_read_host_limits_from_a_recorded_tree(tmp_path: Path) -> None:
    proc = _fake_proc(tmp_path)
    (proc / "sys" / "kernel").mkdir(parents=True)
    (proc / "sys" / "kernel" / "pid_max").write_text("32768\n")
    lim = plan.read_host_limits("local", "20.10", proc=proc, sys_root=tmp_path / "sys")
    assert (lim.pid_max, lim.tasks_now, lim.memcg_count, lim.threads_max) == (32768, 151, 56, None)
    assert lim.engine == "vm", "no dockerd process in the tree: the daemon is elsewhere"


def test_container_spec_is_safe_by_default() -> None:
    import docker

    api = docker.APIClient(base_url="unix:///nonexistent.sock", version="1.41")
    client = type("C", (), {"api": api})()
    spec = containers.container_spec(client, "runtime", containers.DENSITY_IMAGE, "20261204-000000-density-runtime-ab12", 7, None)
    hc = spec["host_config"]
    assert spec["user"] == "65534:65534" and hc["NetworkMode"] == "none" and hc["ReadonlyRootfs"] is True
    assert hc["Memory"] == 16 * 1024**2 and hc["PidsLimit"] == 16 and hc["NanoCpus"] == 10_000_000
    assert hc["CapDrop"] == ["ALL"] and hc["LogConfig"]["Type"] == "none" and "no-new-privileges" in hc["SecurityOpt"]
    assert spec["labels"][containers.LABEL] == "20261204-000000-density-runtime-ab12" and spec["name"].endswith("-0007")
    work = containers.container_spec(client, "workload", "scalelab-ai-agent:0.1.0", "r-ab12", 0, "sl-density-net")
    assert work["user"] == "65532:65532" and work["host_config"]["NetworkMode"] == "sl-density-net"
    assert work["healthcheck"] == {"test": ["NONE"]} and work["host_config"]["Memory"] == 256 * 1024**2


def test_owner_alive(tmp_path: Path) -> None:
    import os
    import socket

    me = socket.gethostname()
    assert containers.owner_alive({containers.PID_LABEL: str(os.getpid()), containers.HOST_LABEL: me})
    assert not containers.owner_alive({containers.PID_LABEL: "0", containers.HOST_LABEL: me})
    assert containers.owner_alive({containers.PID_LABEL: "1", containers.HOST_LABEL: "another-machine"}), "never judge another host's runs"


# --- Kubernetes side: node choice, image, pod spec ----------------------------------------------


def _node(name: str, *, ready: bool = True, taint: str | None = None, images: list[str] | None = None) -> dict[str, object]:
    return {
        "metadata": {"name": name},
        "spec": {"taints": [{"key": "node-role.kubernetes.io/control-plane", "effect": taint}] if taint else []},
        "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                   "allocatable": {"pods": "110"}, "images": [{"names": n.split(",")} for n in images or []]},
    }


def test_pick_node_skips_tainted_and_not_ready_nodes() -> None:
    from scalelab.density.k8s import pick_node

    nodes = [_node("cp", taint="NoSchedule"), _node("w1", ready=False), _node("w2")]
    assert pick_node(nodes)["metadata"]["name"] == "w2"  # type: ignore[index]
    from scalelab.errors import PreflightError

    with pytest.raises(PreflightError):
        pick_node([_node("cp", taint="NoSchedule")])


def test_pause_image_comes_from_what_the_node_holds() -> None:
    from scalelab.density.k8s import pause_image

    node = _node("n", images=["scalelab-ai-agent:0.1.0", "registry.k8s.io/pause@sha256:abc,registry.k8s.io/pause:3.10.1"])
    assert pause_image(node) == "registry.k8s.io/pause:3.10.1"
    assert pause_image(_node("n", images=["scalelab-ai-agent:0.1.0"])) is None


def test_pod_manifest_is_safe_and_left_to_the_scheduler() -> None:
    from scalelab.density.k8s import pod_manifest

    pod = pod_manifest("pause-0001", "run-ab12", "node-1", "registry.k8s.io/pause:3.10.1")
    spec = pod["spec"]
    assert "nodeName" not in spec and spec["nodeSelector"] == {"kubernetes.io/hostname": "node-1"}, "the scheduler decides (Too many pods)"
    c = spec["containers"][0]
    assert c["imagePullPolicy"] == "Never" and spec["securityContext"]["runAsNonRoot"] is True
    assert c["resources"]["limits"] == {"cpu": "10m", "memory": "16Mi"} and c["securityContext"]["readOnlyRootFilesystem"] is True
    assert spec["automountServiceAccountToken"] is False and pod["metadata"]["labels"] == {containers.LABEL: "run-ab12"}


# --- the committed recorded runs (tests/fixtures/runs) -----------------------------------------

RUNS = Path(__file__).resolve().parents[1] / "fixtures" / "runs" / "density"
RUNTIME_RUN = RUNS / "20261204-204438-density-runtime-5082"
PODS_RUN = RUNS / "20261204-204803-density-pods-c08e"


def test_recorded_runtime_run_reads_back(tmp_path: Path) -> None:
    from scalelab.density import density_figure, load_density, summary
    from scalelab.density.record import measured_costs

    run = load_density(RUNTIME_RUN)
    assert run.manifest["observed"]["stop"] == "cap" and run.manifest["observed"]["n_max"] == 300
    assert list(run.batches["n_running"]) == [10, 25, 48, 83, 136, 216, 300]
    text = summary(RUNTIME_RUN)
    assert "observed: cap at 300" in text and "left behind: nothing" in text and "create+start latency at 10" in text
    costs = measured_costs(RUNTIME_RUN)
    assert 10 < costs["tasks"] < 15 and 2 * 1024**2 < costs["memory_bytes"] < 5 * 1024**2
    assert plan.DEFAULT_COSTS["runtime"].tasks == round(costs["tasks"], 1), "the reference costs are this run's"
    assert len((RUNTIME_RUN / "containers.txt").read_text().split()) == 300
    png = density_figure([RUNTIME_RUN, PODS_RUN], tmp_path / "density.png")
    assert png.stat().st_size > 10_000


def test_recorded_pods_run_shows_the_max_pods_wall() -> None:
    from scalelab.density import load_density, summary

    run = load_density(PODS_RUN)
    observed = run.manifest["observed"]
    assert run.manifest["node"]["max_pods"] == 110 and observed["pods_on_node"] == 110
    assert observed["pending"] == 10 and "Too many pods" in observed["reason"]
    assert "against the 5 s p99 objective" in summary(PODS_RUN)


def test_costs_from_a_recorded_run_feed_the_plan() -> None:
    costs = plan.costs_from_run(RUNTIME_RUN, "runtime")
    assert costs.source.startswith("measured by 20261204-204438") and costs.dockerd_fds == pytest.approx(5.06)
