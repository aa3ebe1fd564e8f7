"""The load-balancer image: runs as non-root on a read-only root with its default config, and
with a mounted config (the compose arm's compose/nginx.conf) in front of two agent replicas."""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from scalelab import _run, images, versions

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[2]
LABEL = "scalelab.test=lb-image"


@pytest.fixture(scope="module")
def lb_image(docker_engine: str) -> str:
    if not (images.image_exists(versions.LB_IMAGE) and images.image_exists(versions.AGENT_IMAGE)):
        built = images.build_all(images.default_config(None, probe=False), lambda msg: print(f"[image] {msg}"))
        print("built:", ", ".join(f"{b.tag} {b.size_mb:.0f} MB" for b in built))
    return versions.LB_IMAGE


def _get(url: str, data: bytes | None = None, timeout_s: float = 5) -> tuple[int, bytes]:
    with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=timeout_s) as resp:
        return resp.status, resp.read()


def _wait_get(url: str, data: bytes | None = None, timeout_s: float = 20) -> tuple[int, bytes]:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return _get(url, data)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _hostnames(url: str, body: bytes, n: int) -> set[str]:
    """The agents that answered ``n`` requests in a row (each reply names its container)."""
    return {json.loads(_get(url, body)[1])["hostname"] for _ in range(n)}


def _port(cid: str, inner: str) -> str:
    return _run.run(["docker", "port", cid, inner], timeout_s=30).stdout.split()[0].rsplit(":", 1)[1]


HARDENED = ["--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--cpus", "0.25", "--memory", "64m"]


def test_lb_image_default_config_runs_non_root(lb_image: str) -> None:
    assert images.image_size_bytes(lb_image) / 1e6 < 250
    cid = _run.run(["docker", "run", "-d", "--label", LABEL, *HARDENED, "--tmpfs", "/tmp:size=16m,uid=65532,gid=65532", "-p", "127.0.0.1::8080", lb_image], timeout_s=60).stdout.strip()
    try:
        status, body = _wait_get(f"http://127.0.0.1:{_port(cid, '8080/tcp')}/")
        assert status == 200 and b"scalelab-lb" in body
        user = _run.run(["docker", "inspect", "--format", "{{.Config.User}}", cid], timeout_s=30).stdout.strip()
        assert user.split(":")[0] not in ("", "0", "root")
    finally:
        _run.run(["docker", "rm", "-f", cid], check=False, timeout_s=60)


def test_lb_with_compose_config_balances_over_two_replicas(lb_image: str) -> None:
    conf = REPO / "compose" / "nginx.conf"
    assert conf.is_file(), f"{conf} is shipped with the kit and must exist"
    net = f"scalelab-lbtest-{uuid.uuid4().hex[:6]}"
    started: list[str] = []
    _run.run(["docker", "network", "create", "--label", LABEL, net], timeout_s=60)
    try:
        for _ in range(2):
            started.append(_run.run(["docker", "run", "-d", "--label", LABEL, "--network", net, "--network-alias", "ai-agent", "--cpus", "0.5", "--memory", "256m", "-e", "AGENT_WARMUP_S=0", "-e", "AGENT_WORK_MS=5", versions.AGENT_IMAGE], timeout_s=60).stdout.strip())
        lb = _run.run(["docker", "run", "-d", "--label", LABEL, "--network", net, "--user", "65534:65534", *HARDENED, "--tmpfs", "/tmp:size=16m,uid=65534,gid=65534", "-v", f"{conf}:/etc/nginx/nginx.conf:ro", "-p", "127.0.0.1::8080", lb_image], timeout_s=60).stdout.strip()
        started.append(lb)
        url = f"http://127.0.0.1:{_port(lb, '8080/tcp')}/chat"
        body = json.dumps({"message": "which replica?"}).encode()
        _wait_get(url, body)
        # nginx passes a request to the next agent while one is still starting: wait until both have answered once
        agents, deadline = {cid[:12] for cid in started[:2]}, time.monotonic() + 20
        while _hostnames(url, body, 4) != agents and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _hostnames(url, body, 30) == agents
    finally:
        for cid in started:
            _run.run(["docker", "rm", "-f", cid], check=False, timeout_s=60)
        _run.run(["docker", "network", "rm", net], check=False, timeout_s=60)
