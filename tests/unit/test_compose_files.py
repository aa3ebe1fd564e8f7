"""Every YAML under compose/ parses, and compose.yaml keeps the promises the lesson relies on."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from scalelab.platforms.compose_settings import ComposeSettings, project_name
from scalelab.scenario import load_scenario

COMPOSE = Path(__file__).resolve().parents[2] / "compose"


@pytest.mark.parametrize("path", sorted(COMPOSE.glob("*.y*ml")), ids=lambda p: p.name)
def test_every_compose_yaml_parses(path: Path) -> None:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict) and data.get("services"), f"{path}: no services"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((COMPOSE / "compose.yaml").read_text())


def test_agent_is_scalable_limited_and_unprivileged(compose: dict) -> None:
    agent = compose["services"]["ai-agent"]
    assert "container_name" not in agent and "ports" not in agent  # `--scale` needs both absent
    assert agent["pull_policy"] == "never"
    assert agent["image"] == "${SCALELAB_AGENT_IMAGE:-scalelab-ai-agent:0.1.0}"
    assert agent["cpus"].startswith("${SCALELAB_AGENT_CPUS") and agent["mem_limit"].startswith("${SCALELAB_AGENT_MEMORY")
    assert not agent["user"].startswith("0") and agent["read_only"] is True
    assert "/readyz" in " ".join(agent["healthcheck"]["test"])
    assert agent["stop_grace_period"]
    assert agent["environment"]["AGENT_WORK_MS"].startswith("${SCALELAB_WORK_MS")
    assert agent["environment"]["AGENT_WARMUP_S"].startswith("${SCALELAB_WARMUP_S")
    assert agent["labels"]["scalelab.run-id"].startswith("${SCALELAB_RUN_ID")
    assert not any("docker.sock" in str(v) for v in agent.get("volumes", []))


def test_lb_publishes_only_on_loopback_and_mounts_the_config(compose: dict) -> None:
    lb = compose["services"]["lb"]
    assert lb["ports"] == ["${SCALELAB_LB_BIND:-127.0.0.1}:${SCALELAB_PORT:-8080}:8080"]
    assert "./nginx.conf:/etc/nginx/nginx.conf:ro" in lb["volumes"]
    assert lb["pull_policy"] == "never" and lb["read_only"] is True
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith(("127.0.0.1:", "${SCALELAB_LB_BIND:-127.0.0.1}:")), f"{name} publishes {port} beyond loopback"


def test_nginx_re_resolves_the_service() -> None:
    conf = (COMPOSE / "nginx.conf").read_text()
    assert re.search(r"resolver\s+127\.0\.0\.11\s+valid=1s", conf)
    assert re.search(r"set\s+\$backend\s+http://ai-agent:8000;", conf)
    assert re.search(r"proxy_pass\s+\$backend;", conf)
    assert "upstream " not in conf  # an upstream block would resolve once, at start
    assert re.search(r"listen\s+8080;", conf)


def test_every_variable_is_set_by_the_settings(compose: dict) -> None:
    text = (COMPOSE / "compose.yaml").read_text()
    used = set(re.findall(r"\$\{(SCALELAB_[A-Z_]+)", text)) - {"SCALELAB_HEALTH_INTERVAL"}
    settings = ComposeSettings.for_scenario(load_scenario("classroom-spike", cpu_budget=1.0), "20261123-x")
    assert used == set(settings.env())
    assert settings.env()["SCALELAB_AGENT_CPUS"] == "0.125"
    assert settings.env()["SCALELAB_AGENT_MEMORY"] == "256m"


def test_project_names_are_valid_compose_names() -> None:
    name = project_name("20261123-153000-Classroom-Spike-compose-manual-1a2b")
    assert name == "scalelab-20261123-153000-classroom-spike-compose-manual-1a2b"
    assert re.fullmatch(r"[a-z0-9][a-z0-9_-]*", project_name("x y.z"))


def test_the_weak_service_is_the_agent_with_a_smaller_limit(compose: dict) -> None:
    """Unequal replicas (lab 07): same definition as ai-agent, its own CPU limit, none unless asked, and the name ai-agent too."""
    agent, weak = compose["services"]["ai-agent"], compose["services"]["ai-agent-weak"]
    differs = {k for k in set(agent) | set(weak) if agent.get(k) != weak.get(k)}
    assert differs == {"cpus", "scale", "networks"}
    assert weak["cpus"].startswith("${SCALELAB_WEAK_CPUS") and weak["scale"] == "${SCALELAB_WEAK_REPLICAS:-0}"
    assert weak["networks"]["default"]["aliases"] == ["ai-agent"]


def test_the_lb_mounts_the_kits_folder_read_only_and_takes_its_config(compose: dict) -> None:
    lb = compose["services"]["lb"]
    assert "${SCALELAB_LB_DIR:-./lb.d}:/etc/nginx/lb.d:ro" in lb["volumes"]
    assert lb["command"][:3] == ["nginx", "-c", "${SCALELAB_LB_CONF:-/etc/nginx/nginx.conf}"]
    assert (COMPOSE / "lb.d").is_dir()  # what a hand-started compose mounts
