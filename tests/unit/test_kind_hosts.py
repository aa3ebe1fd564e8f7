"""Hosts on kind (issue 17): hosts: onto worker node containers, caps, hosts.csv rows, node loss, node Ready events.

No Docker, no cluster: the docker commands are recorded by a fake `_run.run`.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from scalelab.errors import PreflightError
from scalelab.faults.measure import fault_impacts
from scalelab.hosts.spec import HostSpec
from scalelab.platforms import kind_hosts as kh
from scalelab.platforms.k8s_status import node_events, node_ready
from scalelab.scenario import load_scenario

WORKERS = ["scalelab-worker", "scalelab-worker2"]
GIB = 2**30


def test_hosts_map_in_order_onto_the_workers_and_the_rest_stay_uncapped():
    plan = kh.plan_hosts([HostSpec("A", 0.5, GIB)], WORKERS, cluster="scalelab", machine_cpus=2)
    assert [(h.name, h.node, h.cpus, h.capped) for h in plan] == [("A", "scalelab-worker", 0.5, True), ("scalelab-worker2", "scalelab-worker2", 2.0, False)]
    assert kh.plan_hosts([], WORKERS, cluster="scalelab", machine_cpus=2)[1].name == "scalelab-worker2"


def test_more_hosts_than_workers_is_refused_naming_the_field_and_the_fix():
    specs = [HostSpec(n, 1, GIB) for n in "ABC"]
    with pytest.raises(PreflightError) as err:
        kh.plan_hosts(specs, WORKERS, cluster="scalelab", machine_cpus=2, source="lab09.yaml")
    msg = err.value.message
    assert "lab09.yaml" in msg and "hosts:" in msg and "3 hosts" in msg and "2 worker(s)" in msg
    assert "role: worker" in err.value.fix and "k8s/kind-cluster.yaml" in err.value.fix


def test_a_host_too_small_for_a_kind_worker_is_refused():
    with pytest.raises(PreflightError) as err:
        kh.plan_hosts([HostSpec("A", 1, 256 * 2**20)], WORKERS, cluster="scalelab", machine_cpus=2)
    assert "A (memory 256 MiB)" in err.value.message and "768m" in err.value.fix


def test_hosts_on_a_cluster_that_is_not_kind_are_refused_and_ignored_without_hosts():
    with pytest.raises(PreflightError) as err:
        kh.KindHosts.for_run([HostSpec("A", 1, GIB)], None, source="s.yaml", describe="context 'prod'")
    assert "not a kind cluster" in err.value.message and "context 'prod'" in err.value.message
    assert "remove hosts:" in err.value.fix
    assert kh.KindHosts.for_run([], None, source="s.yaml", describe="x") is None


def test_cap_and_uncap_commands():
    host = kh.KindHost("B", "scalelab-worker2", 0.5, GIB, capped=True)
    assert kh.cap_argv(host) == ["docker", "update", "--cpu-period", "100000", "--cpu-quota", "50000", "--memory", str(GIB),
                                 "--memory-swap", str(GIB), "scalelab-worker2"]
    assert kh.cap_argv(kh.KindHost("t", "n", 0.001, GIB, capped=True))[5] == "1000", "the kernel's smallest quota"
    assert kh.uncap_argvs("scalelab-worker2", 24 * GIB) == [["docker", "update", "--cpu-quota", "-1", "scalelab-worker2"],
                                                            ["docker", "update", "--memory", str(24 * GIB), "--memory-swap", str(24 * GIB), "scalelab-worker2"]]


class FakeRun:
    def __init__(self, outputs: dict[str, str] | None = None) -> None:
        self.calls: list[list[str]] = []
        self.outputs = outputs or {}

    def __call__(self, argv: Any, **_: Any) -> subprocess.CompletedProcess[str]:
        args = [str(a) for a in argv]
        self.calls.append(args)
        out = next((v for k, v in self.outputs.items() if k in " ".join(args)), "")
        return subprocess.CompletedProcess(args, 0, out, "")


def test_a_run_caps_meters_loses_and_restores_its_hosts(monkeypatch):
    fake = FakeRun({"docker ps": "scalelab-worker2\nscalelab-worker\n", "docker info": f"2 {24 * GIB}"})
    monkeypatch.setattr(kh._run, "run", fake)
    scenario = load_scenario("ci-node-loss", cpu_budget=1)
    from scalelab.hosts.spec import host_specs

    usage = {"scalelab-worker": [(10.0, 500), (10.4, 600)], "scalelab-worker2": [(20.0, 700), (20.1, 800)]}
    hosts = kh.KindHosts.for_run(host_specs(scenario), "scalelab", source="ci-node-loss", describe="kind")
    assert hosts is not None
    clock = iter(range(100))
    from scalelab.hosts.meter import HostMeter

    hosts.meter = HostMeter(hosts.hosts, usage=lambda h: usage[h.container].pop(0) if usage[h.container] else None, clock=lambda: float(next(clock)))
    assert hosts.describe() == [{"host": "A", "node": "scalelab-worker", "cpus": 0.5, "memory_bytes": 2 * GIB},
                                {"host": "B", "node": "scalelab-worker2", "cpus": 0.5, "memory_bytes": 2 * GIB}]
    hosts.apply_caps()
    assert [c[-1] for c in fake.calls if c[:2] == ["docker", "update"]] == ["scalelab-worker", "scalelab-worker2"]
    first = hosts.rows({"scalelab-worker": 2, "scalelab-worker2": 2})
    assert [(r["host"], r["up"], r["replicas"], r["cpu_cores"], r["cpu_limit_cores"]) for r in first] == [("A", 1, 2, None, 0.5), ("B", 1, 2, None, 0.5)]
    second = hosts.rows({"scalelab-worker": 2, "scalelab-worker2": 2})
    assert second[0]["cpu_cores"] == pytest.approx(0.2) and second[1]["cpu_cores"] == pytest.approx(0.05)
    assert "docker kill scalelab-worker2" in hosts.stop("B") and hosts.stopped_nodes == {"scalelab-worker2"}
    assert ["docker", "kill", "--signal", "KILL", "scalelab-worker2"] in fake.calls
    lost = hosts.rows({"scalelab-worker": 2, "scalelab-worker2": 2})
    assert (lost[1]["up"], lost[1]["replicas"], lost[1]["cpu_cores"]) == (0, 0, None)
    with pytest.raises(PreflightError):
        hosts.stop("C")
    fake.calls.clear()
    hosts.restore(say=lambda _: None)
    assert [c[:3] for c in fake.calls] == [["docker", "update", "--cpu-quota"], ["docker", "update", "--memory"]] * 2 + [["docker", "start", "scalelab-worker2"]]
    fake.calls.clear()
    hosts.restore(say=lambda _: None)
    assert fake.calls == [], "restore twice does nothing twice"


def _node(name: str, status: str, reason: str = "") -> dict[str, Any]:
    return {"metadata": {"name": name}, "status": {"conditions": [{"type": "MemoryPressure", "status": "False"},
                                                                  {"type": "Ready", "status": status, "reason": reason}]}}


def test_node_ready_changes_become_events():
    first = node_ready([_node("w1", "True"), _node("w2", "True")])
    assert node_events({}, first) == [], "the first look is the baseline"
    lost = node_ready([_node("w1", "True"), _node("w2", "Unknown", "NodeStatusUnknown")])
    assert node_events(first, lost) == [{"kind": "node", "source": "kubernetes", "detail": "w2 (Ready=Unknown NodeStatusUnknown) down"}]
    assert node_events(lost, lost) == []
    back = node_ready([_node("w1", "True"), _node("w2", "True", "KubeletReady")])
    assert node_events(lost, back) == [{"kind": "node", "source": "kubernetes", "detail": "w2 (Ready=True KubeletReady) ready"}]


def test_node_loss_recovery_is_measured_from_the_fault():
    """Four replicas, host B lost at 8 s: NotReady at 36 s, two replacements at 42 s, ready at 45 s, ready count back at 46 s."""
    reqs = [{"t_s": t / 2, "response_ms": 50, "ok": 1, "status_code": 200, "replica": "p" + str(t % 4), "error": ""} for t in range(0, 100)]
    reqs += [{"t_s": 47.0, "response_ms": 60, "ok": 1, "status_code": 200, "replica": "new1", "error": ""}]
    events = [{"t_s": 8.0, "kind": "fault", "detail": "node-loss host=B docker kill scalelab-worker2"},
              {"t_s": 36.0, "kind": "node", "detail": "scalelab-worker2 (Ready=Unknown NodeStatusUnknown) down"},
              {"t_s": 42.0, "kind": "replica_start", "detail": "new1 on scalelab-worker"},
              {"t_s": 45.0, "kind": "replica_ready", "detail": "new1 on scalelab-worker"}]
    samples = [{"t_s": t, "replicas_ready": 4 if t < 36 or t >= 46 else 2} for t in range(0, 60)]
    (imp,) = fault_impacts(reqs, events, samples, sample_offset_s=0.0)
    assert imp.kind == "node-loss" and imp.replica == ""
    assert (imp.to_node_down_s, imp.to_replacement_s, imp.to_ready_s, imp.to_first_2xx_s, imp.to_desired_s) == (28.0, 34.0, 37.0, 39.0, 38.0)
    assert (imp.ready_before, imp.ready_min) == (4, 2)


def test_a_node_is_read_at_its_container_cgroup_not_where_its_systemd_moved_itself():
    cid = "4f" * 32
    proc_cgroup = "\n".join([
        f"12:memory:/docker/{cid}/init.scope",
        f"5:cpu,cpuacct:/docker/{cid}",
        f"1:name=systemd:/docker/{cid}/init.scope",
        f"0::/system.slice/docker-{cid}.scope/init.scope",
    ])
    assert kh.container_cgroup(proc_cgroup, cid).splitlines() == [
        f"12:memory:/docker/{cid}", f"5:cpu,cpuacct:/docker/{cid}", f"1:name=systemd:/docker/{cid}", f"0::/system.slice/docker-{cid}.scope",
    ]
    from scalelab.hosts.dind import cgroup_files

    cpu, mem, stat = cgroup_files(kh.container_cgroup(proc_cgroup, cid))
    assert str(mem) == f"/sys/fs/cgroup/memory/docker/{cid}/memory.usage_in_bytes"


RUN = Path(__file__).resolve().parents[1] / "fixtures" / "runs" / "kind-hosts" / "20261205-033452-ci-node-loss-kubernetes-fixed-e5a6"
LAB09 = Path(__file__).resolve().parents[2] / "labs" / "09-one-host-is-not-enough.md"


def test_the_committed_kind_node_loss_run_is_what_lab_09_shows():
    """The recorded run (lab 09 step 8, docs/hosts-on-kind.md): spread 2 + 2, B lost at 8 s, NotReady, replaced on A."""
    from scalelab.faults.table import COLUMNS, render, run_rows
    from scalelab.hosts.__main__ import render as hosts_table
    from scalelab.telemetry import load_run

    run = load_run(RUN)
    lab = LAB09.read_text(encoding="utf-8")
    rows = run_rows(run)
    printed = render(rows, COLUMNS)
    assert printed in lab, "lab 09 step 9 shows another fault table than `python -m scalelab.faults` prints for the committed run"
    (row,) = rows
    assert row["kind"] == "node-loss" and 20 <= row["to_node_down_s"] <= 40 and row["to_desired_s"] > row["to_node_down_s"]
    for line in hosts_table([str(RUN)]).splitlines()[1:]:
        assert line.rstrip() in lab, line
    h = run.hosts
    before = h[h.t_s < 8]
    assert set(before.host) == {"A", "B"} and (before.replicas == 2).all()
    assert (h[(h.host == "A") & (h.t_s > 50)].replicas == 4).all()
