"""The swarm stack file rendered from scenarios, the swarm-state preflight and the IPVS check (no Docker)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from scalelab.errors import PreflightError, ScenarioError
from scalelab.platforms import swarm
from scalelab.platforms.compose_settings import SERVICE
from scalelab.platforms.swarm_stack import SwarmSettings, compose_service, ipvs_status, render_nginx, render_stack, stack_yaml
from scalelab.registry import platform_spec
from scalelab.scenario import load_scenario

ARM = """
  swarm-x:
    platform: swarm
    replicas: 3
    scaler: {type: fixed}
"""


def scenario_with(swarm_section: str = "", budget: float = 1.0) -> Any:
    base = Path(__file__).resolve().parents[2] / "src" / "scalelab" / "scenarios" / "ci-spike.yaml"
    return parse(base.read_text(encoding="utf-8") + ARM + swarm_section, budget)


def parse(text: str, budget: float = 1.0) -> Any:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "scenario.yaml"
        path.write_text(text, encoding="utf-8")
        return load_scenario(path, cpu_budget=budget)


def rendered(swarm_section: str = "", budget: float = 1.0) -> tuple[SwarmSettings, dict[str, Any]]:
    s = SwarmSettings.for_scenario(scenario_with(swarm_section, budget), "swarm-x", "run-1")
    return s, render_stack(s)


def test_the_service_is_compose_yaml_s_service_with_a_deploy_section() -> None:
    s, doc = rendered()
    svc = doc["services"][SERVICE]
    compose = compose_service()
    # same image, user, read-only root, tmpfs, capabilities, healthcheck test as the compose arm
    assert svc["image"] == s.agent_image
    for key in ("user", "read_only", "cap_drop", "stop_grace_period"):
        assert svc[key] == compose[key], key
    assert svc["user"] != "0" and svc["read_only"] is True and svc["cap_drop"] == ["ALL"]
    assert svc["healthcheck"]["test"] == compose["healthcheck"]["test"]
    # compose's /tmp:size=16m as the long form swarm applies (the short one it drops silently)
    assert compose["tmpfs"] == ["/tmp:size=16m"] and "tmpfs" not in svc
    assert svc["volumes"] == [{"type": "tmpfs", "target": "/tmp", "tmpfs": {"size": 16 * 2**20}}]
    assert svc["healthcheck"]["interval"] == "3s" and svc["healthcheck"]["start_period"] == "60s"
    assert svc["environment"] == {"AGENT_WORK_MS": "50", "AGENT_WARMUP_S": "3", "AGENT_DRAIN": "1"}
    # compose-only keys are gone; nothing is published (nginx is the only door, on 127.0.0.1)
    for key in ("pull_policy", "cpus", "mem_limit", "pids_limit", "security_opt", "ports", "depends_on"):
        assert key not in svc, key
    assert "${" not in json.dumps(doc)
    assert doc["version"] == "3.9"


def test_limits_and_reservations_follow_the_sized_workload() -> None:
    sc = scenario_with(budget=2.0)
    s, doc = SwarmSettings.for_scenario(sc, "swarm-x", "r"), None
    doc = render_stack(s)
    res = doc["services"][SERVICE]["deploy"]["resources"]
    assert res["limits"] == {"cpus": f"{sc.workload.cpu_limit:g}", "memory": f"{sc.workload.memory_mb}M", "pids": 256}
    assert res["reservations"] == {"cpus": f"{sc.workload.cpu_request:g}", "memory": f"{sc.workload.memory_mb}M"}
    assert float(res["reservations"]["cpus"]) <= float(res["limits"]["cpus"])
    assert doc["services"][SERVICE]["deploy"]["replicas"] == 3


def test_defaults_are_swarm_s_own_and_dnsrr_on_an_attachable_overlay() -> None:
    s, doc = rendered()
    d = doc["services"][SERVICE]["deploy"]
    assert d["endpoint_mode"] == "dnsrr" and d["mode"] == "replicated"
    assert d["restart_policy"] == {"condition": "any", "delay": "5s"}
    assert d["update_config"] == {"parallelism": 1, "delay": "0s", "failure_action": "pause", "monitor": "5s", "max_failure_ratio": 0.0, "order": "stop-first"}
    assert "placement" not in d
    assert doc["networks"]["net"]["driver"] == "overlay" and doc["networks"]["net"]["attachable"] is True
    assert doc["services"][SERVICE]["networks"] == ["net"]
    assert s.service == "scalelab-run-1_ai-agent" and s.network == "scalelab-run-1_net"


def test_restart_update_and_placement_come_from_the_arm() -> None:
    _, doc = rendered(
        """    swarm:
      restart_policy: {condition: on-failure, delay_s: 2s, max_attempts: 3, window_s: 30s}
      update_config: {parallelism: 2, delay_s: 10s, failure_action: rollback, monitor_s: 8s, max_failure_ratio: 0.25, order: start-first}
      placement: {constraints: ["node.role==manager"], spread: [node.labels.zone], max_replicas_per_node: 4}
"""
    )
    d = doc["services"][SERVICE]["deploy"]
    assert d["restart_policy"] == {"condition": "on-failure", "delay": "2s", "max_attempts": 3, "window": "30s"}
    assert d["update_config"] == {"parallelism": 2, "delay": "10s", "failure_action": "rollback", "monitor": "8s", "max_failure_ratio": 0.25, "order": "start-first"}
    assert d["placement"] == {"constraints": ["node.role==manager"], "preferences": [{"spread": "node.labels.zone"}], "max_replicas_per_node": 4}


def test_the_ci_spike_swarm_arm_renders_start_first_updates() -> None:
    sc = load_scenario("ci-spike", cpu_budget=1.0)
    doc = render_stack(SwarmSettings.for_scenario(sc, "swarm-manual", "r"))
    d = doc["services"][SERVICE]["deploy"]
    assert d["update_config"]["order"] == "start-first" and d["restart_policy"]["delay"] == "2s"
    assert sc.arms["swarm-manual"].scaler.actions[0].replicas == 5


@pytest.mark.parametrize(
    "section, message",
    [
        ("    swarm: {endpoint_mode: ingress}\n", "endpoint_mode"),
        ("    swarm: {update_config: {order: random}}\n", "order"),
        ("    swarm: {update_config: {max_failure_ratio: 2}}\n", "max_failure_ratio"),
        ("    swarm: {placement: {max_replicas_per_node: 0}}\n", "max_replicas_per_node"),
        ("    swarm: {restart_policy: {delay_s: -1}}\n", "delay_s"),
        ("    swarm: {replicas: 3}\n", "replicas"),
    ],
)
def test_bad_swarm_settings_are_scenario_errors(section: str, message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        scenario_with(section)


def test_a_swarm_section_on_another_platform_is_an_error() -> None:
    base = Path(__file__).resolve().parents[2] / "src" / "scalelab" / "scenarios" / "ci-spike.yaml"
    text = base.read_text(encoding="utf-8").replace("  compose-manual:\n    platform: compose\n", "  compose-manual:\n    platform: compose\n    swarm: {}\n")
    with pytest.raises(ScenarioError, match="platform: swarm only"):
        parse(text)


def test_stack_yaml_round_trips_and_keeps_the_healthcheck_escape() -> None:
    s, doc = rendered()
    text = stack_yaml(s)
    assert yaml.safe_load(text) == doc
    assert "$$line" in text  # stack deploy interpolates too: `$$` reaches the container as `$`


def test_nginx_points_at_the_tasks_name_in_dnsrr_and_at_the_vip_otherwise() -> None:
    s, _ = rendered()
    conf = render_nginx(s)
    assert "http://tasks.scalelab-run-1_ai-agent:8000" in conf and "http://ai-agent:8000" not in conf
    assert "resolver 127.0.0.11 valid=1s" in conf
    s2, _ = rendered("    swarm: {endpoint_mode: vip}\n")
    assert "http://scalelab-run-1_ai-agent:8000" in render_nginx(s2)


def test_settings_survive_the_state_file(tmp_path: Path) -> None:
    s, _ = rendered("    swarm: {placement: {constraints: [node.role==manager]}}\n")
    s.write(tmp_path)
    assert SwarmSettings.read(tmp_path) == s


def test_ipvs_detection(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.platform", "linux")
    assert ipvs_status(tmp_path)[0] is False and "no loadable modules" not in ipvs_status(tmp_path)[1]
    assert "loads no modules" in ipvs_status(tmp_path)[1] and "dnsrr" in ipvs_status(tmp_path)[1]
    (tmp_path / "modules").write_text("")
    assert ipvs_status(tmp_path)[0] is False and "modprobe ip_vs" in ipvs_status(tmp_path)[1]
    (tmp_path / "net").mkdir()
    (tmp_path / "net" / "ip_vs").write_text("")
    assert ipvs_status(tmp_path)[0] is True
    monkeypatch.setattr("sys.platform", "darwin")
    assert ipvs_status(tmp_path)[0] is None


class FakeSdk:
    def __init__(self, swarm_info: dict[str, Any]) -> None:
        self.swarm_info = swarm_info

    def info(self) -> dict[str, Any]:
        return {"Swarm": self.swarm_info}


def test_preflight_refuses_a_swarm_the_kit_did_not_create_and_a_worker(tmp_path: Path) -> None:
    swarm.check_swarm_usable(FakeSdk({"LocalNodeState": "inactive"}), tmp_path)  # the kit will init
    with pytest.raises(PreflightError, match="did not create") as exc:
        swarm.check_swarm_usable(FakeSdk({"LocalNodeState": "active", "NodeID": "n1", "ControlAvailable": True}), tmp_path)
    assert "docker swarm leave" in exc.value.fix
    with pytest.raises(PreflightError, match="not a manager"):
        swarm.check_swarm_usable(FakeSdk({"LocalNodeState": "active", "NodeID": "n1", "ControlAvailable": False}), tmp_path)
    with pytest.raises(PreflightError, match="'locked'"):
        swarm.check_swarm_usable(FakeSdk({"LocalNodeState": "locked"}), tmp_path)
    # the kit's own swarm (recorded node id) is fine; another node id is not
    (tmp_path / swarm.OWNER_FILE).write_text(json.dumps({"node_id": "n1"}))
    swarm.check_swarm_usable(FakeSdk({"LocalNodeState": "active", "NodeID": "n1", "ControlAvailable": True}), tmp_path)
    with pytest.raises(PreflightError, match="did not create"):
        swarm.check_swarm_usable(FakeSdk({"LocalNodeState": "active", "NodeID": "n2", "ControlAvailable": True}), tmp_path)


def test_registry_line() -> None:
    spec = platform_spec("swarm")
    assert spec.autoscalers == () and spec.kit_scalable and spec.spreads_over_nodes and spec.sim_spreading == "round-robin"
    assert spec.ports == (8090,) and {"engine", "images", "swarm"} <= spec.doctor_needs
    assert swarm.KIND.spec is spec
