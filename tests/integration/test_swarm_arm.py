"""The swarm arm on the real engine: swarm init, stack deploy, service scale, nginx on 127.0.0.1.

Traffic goes only to 127.0.0.1 (the kit's nginx). Each test leaves the engine as it found it:
no stack, no overlay network, no swarm (the engine is in none when the tests start).
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
from livekit import docker, free_port, swarm_state

from scalelab.errors import PreflightError
from scalelab.platforms.swarm import SwarmPlatform, state_root
from scalelab.platforms.swarm_stack import SwarmSettings
from scalelab.scenario import load_scenario
from scalelab.telemetry import load_run, schema

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[2]
SCALELAB = [sys.executable, "-m", "scalelab"]


def leftovers(stack: str) -> list[str]:
    out = docker("ps", "-a", "-q", "--filter", f"label=com.docker.stack.namespace={stack}").split()
    out += docker("ps", "-a", "-q", "--filter", f"label=scalelab.stack={stack}").split()
    out += docker("network", "ls", "-q", "--filter", f"name={stack}_").split()
    return out


@pytest.fixture()
def clean_engine(scalelab_images: str) -> str:
    """The engine in no swarm (as CI leaves it); asserts the test put it back that way."""
    if swarm_state() != "inactive":
        pytest.skip("this engine is already in a swarm; the swarm tests need one that is not (they never touch a foreign swarm)")
    gw_before = bool(docker("network", "ls", "-q", "--filter", "name=docker_gwbridge").split())
    yield scalelab_images
    assert swarm_state() == "inactive"
    assert bool(docker("network", "ls", "-q", "--filter", "name=docker_gwbridge").split()) == gw_before


def chat(base_url: str) -> str:
    req = urllib.request.Request(f"{base_url}/chat", data=b'{"message": "hi"}', headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return str(json.loads(resp.read())["hostname"])


def test_rendered_stacks_pass_the_cli_s_stack_schema(docker_engine: str, tmp_path: Path) -> None:
    """`docker stack config` validates against the compose schema stack deploy uses and lists what it would ignore."""
    from scalelab.platforms.swarm_stack import stack_yaml

    sc = load_scenario("ci-spike", cpu_budget=1.0)
    base = SwarmSettings.for_scenario(sc, "swarm-manual", "schema")
    variants = [base, dataclasses.replace(base, endpoint_mode="vip", placement={"constraints": ["node.role==manager"], "spread": ["node.labels.zone"], "max_replicas_per_node": 3},
                                          restart_policy={"condition": "on-failure", "delay_s": 1.0, "max_attempts": 3, "window_s": 20.0})]
    for i, s in enumerate(variants):
        path = tmp_path / f"stack-{i}.yaml"
        path.write_text(stack_yaml(s), encoding="utf-8")
        proc = subprocess.run(["docker", "stack", "config", "-c", str(path)], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0 and "Ignoring" not in proc.stderr, proc.stderr
        assert "max_replicas_per_node: 3" in proc.stdout or i == 0


def test_a_swarm_the_kit_did_not_create_fails_preflight(clean_engine: str) -> None:
    sc = load_scenario("ci-spike", cpu_budget=1.0)
    platform = SwarmPlatform(SwarmSettings.for_scenario(sc, "swarm-manual", f"it-foreign-{os.getpid()}", port=free_port()))
    docker("swarm", "init", "--advertise-addr", "127.0.0.1")  # someone else's swarm
    try:
        with pytest.raises(PreflightError, match="already in a swarm the kit did not create"):
            platform.preflight()
        assert docker("service", "ls", "-q") == ""
    finally:
        docker("swarm", "leave", "--force")
        if not (state_root() / "swarm-owner.json").exists():
            subprocess.run(["docker", "network", "rm", "docker_gwbridge"], capture_output=True)
    assert swarm_state() == "inactive"


def test_deploy_scale_2_to_5_spreads_over_all_tasks_and_down_leaves_nothing(clean_engine: str) -> None:
    sc = load_scenario("ci-spike", cpu_budget=1.0)
    settings = dataclasses.replace(
        SwarmSettings.for_scenario(sc, "swarm-manual", f"it-{os.getpid()}-{int(time.time())}", port=free_port()), work_ms=5.0, warmup_s=1.0
    )
    platform = SwarmPlatform(settings)
    try:
        platform.preflight()
        platform.up(2)
        platform.wait_ready(2, timeout_s=90)
        assert platform.deploy_to_healthy_s is not None and platform.deploy_to_healthy_s < 90
        print(f"stack deploy -> 2 tasks healthy: {platform.deploy_to_healthy_s} s")
        info = platform.describe()
        assert info["swarm_created_by_kit"] is True and info["endpoint_mode"] == "dnsrr"
        assert info["agent_cpu_limit_cores"] == pytest.approx(settings.cpus)
        assert info["agent_cpu_reservation_cores"] == pytest.approx(settings.cpu_reservation)
        assert info["agent_nano_cpus"] == int(settings.cpus * 1e9)
        assert info["update_config"]["Order"] == "start-first" and info["restart_policy"]["Delay"] == 2_000_000_000
        platform.check_limits()
        # The nginx front door is the only published port, on 127.0.0.1.
        assert docker("port", settings.lb_container).strip().startswith("8080/tcp -> 127.0.0.1:")

        # Hardening as on compose: non-root, read-only root, /tmp a writable tmpfs, no capabilities.
        task = docker("ps", "-q", "--filter", f"label=com.docker.swarm.service.name={settings.service}").split()[0]
        probe = subprocess.run(["docker", "exec", task, "bash", "-c", "id -u; grep ' /tmp ' /proc/mounts; touch /tmp/x && echo tmp-ok; touch /x || echo root-ro"],
                               capture_output=True, text=True, timeout=30).stdout
        assert probe.splitlines()[0] == "65532" and "tmpfs /tmp tmpfs" in probe and "tmp-ok" in probe and "root-ro" in probe, probe
        assert json.loads(docker("inspect", "--format", "{{json .HostConfig.CapDrop}}", task)) == ["ALL"]

        obs = platform.observe()
        assert obs.replicas_desired == 2 and obs.replicas_ready == 2 and obs.replicas_measured == 2
        assert {e["kind"] for e in obs.events} >= {"replica_start", "replica_ready"}
        first = Counter(chat(platform.base_url) for _ in range(20))
        assert set(first) == {row["pod"] for row in obs.placement}, (first, obs.placement)

        started = time.monotonic()
        platform.scale(5)
        platform.wait_ready(5, timeout_s=90)
        print(f"service scale 2 -> 5 healthy: {time.monotonic() - started:.1f} s")
        time.sleep(1.5)  # nginx re-resolves tasks.<service> every second
        obs = platform.observe()
        assert obs.replicas_desired == 5 and obs.replicas_ready == 5 and len(obs.placement) == 5
        assert {row["node"] for row in obs.placement} == {socket.gethostname()} or len({row["node"] for row in obs.placement}) == 1
        spread = Counter(chat(platform.base_url) for _ in range(50))
        print("requests per task after scale to 5:", dict(spread))
        assert set(spread) == {row["pod"] for row in obs.placement}, (spread, obs.placement)
        assert min(spread.values()) >= 3, spread
        time.sleep(1.2)
        obs = platform.observe()
        assert obs.cpu_cores_used is not None and obs.mem_mb is not None and obs.mem_mb > 0
        assert all(r.mem_pct_of_limit is not None for r in obs.replicas)
    finally:
        platform.down()
    assert leftovers(settings.stack) == []
    assert not (state_root() / settings.stack).exists()


def test_interrupted_run_leaves_no_stack_network_or_swarm(clean_engine: str, tmp_path: Path) -> None:
    env = {**os.environ, "SCALELAB_SWARM_PORT": str(free_port())}
    proc = subprocess.Popen([*SCALELAB, "run", "ci-spike", "--arm", "swarm-manual", "--cpu-budget", "1", "--runs-dir", str(tmp_path)],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 150
    samples = None
    while time.monotonic() < deadline and proc.poll() is None:
        found = list(tmp_path.glob(f"*/{schema.SAMPLES}"))
        if found and len(found[0].read_text().splitlines()) > 6:
            samples = found[0]
            break
        time.sleep(0.5)
    assert samples is not None, "the run did not record 6 samples in time"
    stack = json.loads((samples.parent / schema.MANIFEST).read_text())["platform_info"]["swarm_stack"]
    assert docker("service", "ls", "-q", "--filter", f"label=com.docker.stack.namespace={stack}").strip()
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=150)
    print(out[-2000:])
    assert proc.returncode == 130, out[-2000:]
    run = load_run(samples.parent)
    assert run.manifest["status"] == "interrupted" and run.manifest["platform"] == "swarm"
    assert set(run.samples.replicas_ready) <= {0, 1, 2} and run.samples.replicas_ready.iloc[-1] == 2
    assert len(run.requests) > 0 and set(run.requests.replica.dropna()) <= set(run.placement.pod)
    assert (tmp_path / samples.parent.name / "swarm-stack.yaml").is_file()
    assert leftovers(stack) == []
