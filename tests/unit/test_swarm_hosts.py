"""A swarm over Docker-in-Docker hosts, without Docker: node states, the stack's worker constraint, settings, node-loss measures."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from scalelab.errors import PlatformError
from scalelab.faults.measure import fault_impacts
from scalelab.platforms.compose_settings import SERVICE
from scalelab.platforms.swarm import SwarmPlatform
from scalelab.platforms.swarm_hosts import SwarmHosts, node_changes, node_states
from scalelab.platforms.swarm_stack import WORKERS_ONLY, SwarmSettings, render_stack
from scalelab.scenario import load_scenario

HOSTS = ({"name": "A", "cpus": 1.0, "memory_bytes": 2**30}, {"name": "B", "cpus": 1.0, "memory_bytes": 2**30})


def settings(**kw: Any) -> SwarmSettings:
    sc = load_scenario("ci-spike", cpu_budget=1.0)
    return dataclasses.replace(SwarmSettings.for_scenario(sc, "swarm-manual", "run-1"), **kw)


def node(addr: str, state: str = "ready", availability: str = "active", role: str = "worker") -> dict[str, Any]:
    return {"ID": addr, "Status": {"Addr": addr, "State": state}, "Spec": {"Availability": availability, "Role": role}}


def test_node_states_name_the_hosts_by_their_address_and_skip_the_manager() -> None:
    nodes = [node("172.18.0.1", role="manager"), node("172.18.0.2"), node("172.18.0.3", state="down"), node("172.18.0.4", availability="drain")]
    names = {"172.18.0.2": "A", "172.18.0.3": "B", "172.18.0.4": "C"}
    assert node_states(nodes, names) == {"A": "ready", "B": "down", "C": "ready/drain"}


def test_node_events_only_on_change() -> None:
    assert node_changes({}, {"A": "ready", "B": "ready"}) == [
        {"kind": "node", "replicas": None, "source": "swarm", "detail": "A ready"},
        {"kind": "node", "replicas": None, "source": "swarm", "detail": "B ready"},
    ]
    assert node_changes({"A": "ready", "B": "ready"}, {"A": "ready", "B": "ready"}) == []
    assert [e["detail"] for e in node_changes({"A": "ready", "B": "ready"}, {"A": "ready", "B": "down"})] == ["B down"]


def test_with_hosts_tasks_are_kept_off_the_manager_and_without_them_nothing_changes() -> None:
    single = render_stack(settings())["services"][SERVICE]["deploy"]
    assert WORKERS_ONLY not in (single.get("placement") or {}).get("constraints", [])
    multi = render_stack(settings(hosts=HOSTS))["services"][SERVICE]["deploy"]
    assert multi["placement"]["constraints"].count(WORKERS_ONLY) == 1
    twice = render_stack(settings(hosts=HOSTS, placement={"constraints": [WORKERS_ONLY], "spread": [], "max_replicas_per_node": None}))
    assert twice["services"][SERVICE]["deploy"]["placement"]["constraints"] == [WORKERS_ONLY]


def test_settings_keep_the_hosts_across_write_and_read(tmp_path: Path) -> None:
    s = settings(hosts=HOSTS)
    s.write(tmp_path)
    back = SwarmSettings.read(tmp_path)
    assert back == s and back.hosts == HOSTS
    assert SwarmPlatform(back).hosts is not None and SwarmPlatform(settings()).hosts is None


def test_node_loss_needs_hosts_and_a_known_host_name() -> None:
    with pytest.raises(PlatformError, match="needs a swarm that spans hosts"):
        SwarmPlatform(settings()).stop_host("B")
    with pytest.raises(PlatformError, match="no host 'C'"):
        SwarmHosts(HOSTS, owner="s").host("C")


def _req(t: float, replica: str, ok: bool = True) -> dict[str, Any]:
    return {"t_s": t, "response_ms": 40.0, "ok": int(ok), "status_code": 200 if ok else 0, "replica": replica if ok else "", "error": "" if ok else "timeout"}


def test_node_loss_is_measured_from_the_fault_to_node_down_to_replicas_back() -> None:
    """Host B (tasks b1, b2) stops at 20 s: Swarm says down at 35 s, replacements start at 36 s and are ready at 40 s."""
    reqs = [_req(t / 2, ["a1", "a2", "b1", "b2"][t % 4]) for t in range(0, 40)]
    reqs += [_req(21.0, "", ok=False)] + [_req(20 + t / 2, ["a1", "a2"][t % 2]) for t in range(1, 40)] + [_req(41.0, "a3"), _req(41.5, "a4")]
    events = [{"t_s": 0, "kind": "node", "detail": "A ready"}, {"t_s": 0, "kind": "node", "detail": "B ready"},
              {"t_s": 20.0, "kind": "fault", "detail": "node-loss replica=B host B stopped"},
              {"t_s": 20.4, "kind": "replica_stop", "detail": "b1"}, {"t_s": 35.4, "kind": "node", "detail": "B down"},
              {"t_s": 36.4, "kind": "replica_start", "detail": "a3"}, {"t_s": 40.4, "kind": "replica_ready", "detail": "a3"}]
    samples = [{"t_s": t, "replicas_ready": 4 if t < 20 or t >= 41 else 2} for t in range(1, 50)]
    (imp,) = fault_impacts(reqs, events, samples)
    assert imp.to_node_down_s == 15.4 and imp.to_replacement_s == 16.4 and imp.to_ready_s == 20.4
    assert imp.to_first_2xx_s == 21.0 and imp.to_desired_s == 21.4 and (imp.ready_before, imp.ready_min) == (4, 2)
    kill = fault_impacts(reqs, [e for e in events if e["kind"] != "node"], samples)[0]
    assert kill.to_node_down_s is None


RUN = Path(__file__).resolve().parents[1] / "fixtures" / "runs" / "swarm-hosts" / "20261205-033013-ci-swarm-hosts-swarm-hosts-3971"


def test_the_committed_node_loss_run_is_what_docs_swarm_md_quotes() -> None:
    """Spread 3/3 before, 6 on A after, and the milestones of the table in docs/swarm.md ("Losing a host, measured")."""
    from collections import Counter

    from scalelab.telemetry import load_run

    run = load_run(RUN)
    assert run.manifest["scenario"] == "ci-swarm-hosts" and run.manifest["platform"] == "swarm" and run.manifest["status"] == "completed"
    place = run.placement
    assert Counter(place[place.t_s == 14].node) == {"A": 3, "B": 3}
    assert Counter(place[place.t_s == place.t_s.max()].node) == {"A": 6}
    (imp,) = fault_impacts(run.requests.to_dict("records"), run.events.to_dict("records"), run.samples.to_dict("records"),
                           sample_offset_s=float(run.manifest["sample_offset_s"]))
    seconds = [round(s, 2) for s in (imp.to_node_down_s, imp.to_replacement_s, imp.to_ready_s, imp.to_first_2xx_s, imp.to_desired_s) if s is not None]
    assert seconds == [16.59, 23.47, 26.7, 29.02, 27.38] and (imp.failed, imp.requests) == (9, 248)
    doc = (Path(__file__).resolve().parents[2] / "docs" / "swarm.md").read_text(encoding="utf-8")
    for quoted in ("**16.6 s** after the kill", "(23.5 s after the fault)", "(26.7 s); ready back to 6 at 27.4 s", "9 of 248 requests", RUN.name):
        assert quoted in doc, quoted
    hosts = run.hosts
    assert set(hosts[hosts.t_s > 16].query("host == 'B'").up) == {0}
    assert set(hosts[hosts.t_s >= 44].query("host == 'A'").replicas) == {6}


def test_lab09_swarm_part_shows_what_the_tools_print_for_the_committed_run(capsys: pytest.CaptureFixture[str]) -> None:
    from scalelab.faults import table
    from scalelab.hosts.__main__ import main as hosts_main

    def faults_main(argv: list[str]) -> int:
        return table.main(argv, table.run_rows, table.COLUMNS, module="scalelab.faults", empty="none")

    lab = (Path(__file__).resolve().parents[2] / "labs" / "09-one-host-is-not-enough.md").read_text(encoding="utf-8")
    for main in (faults_main, hosts_main):
        assert main([str(RUN)]) == 0
        printed = capsys.readouterr().out.strip()
        for line in printed.splitlines()[1:]:
            assert line.strip() in lab, f"lab 09 shows another line than the tools print today: {line}"


def test_replica_faults_on_a_swarm_of_hosts_fail_before_anything_starts(tmp_path: Path) -> None:
    import yaml

    from scalelab.errors import ScenarioError
    from scalelab.platforms import PlatformOptions
    from scalelab.platforms.swarm import KIND

    source = Path(__file__).resolve().parents[2] / "src" / "scalelab" / "scenarios" / "ci-swarm-hosts.yaml"
    doc = yaml.safe_load(source.read_text(encoding="utf-8"))
    assert isinstance(KIND.create(load_scenario(source, cpu_budget=1), "swarm-hosts", run_id="r", options=PlatformOptions()), SwarmPlatform)
    doc["faults"] = [{"at_s": 10, "kind": "kill"}, *doc["faults"]]
    path = tmp_path / "kill.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    with pytest.raises(ScenarioError, match="kill are not implemented yet on a swarm that spans hosts"):
        KIND.create(load_scenario(path, cpu_budget=1), "swarm-hosts", run_id="r", options=PlatformOptions())
