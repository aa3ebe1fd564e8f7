"""The ai-agent image on the real Docker engine: size, non-root, CPU limit honoured, metrics, drain.

Builds the image if it is missing (offline when SCALELAB_OFFLINE=1 or no registry answers).
Traffic goes only to 127.0.0.1; load is a few threads for a bounded time. Containers started
here carry the label scalelab.test=agent-image and are removed even when a test fails.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from scalelab import _run, images, versions

pytestmark = pytest.mark.docker

LABEL = "scalelab.test=agent-image"
MAX_IMAGE_MB = 250


@pytest.fixture(scope="module")
def agent_image(docker_engine: str) -> str:
    if not images.image_exists(versions.AGENT_IMAGE):
        built = images.build_agent(images.default_config(None, probe=False), lambda msg: print(f"[image] {msg}"))
        print("built:", ", ".join(f"{b.tag} {b.size_mb:.0f} MB in {b.seconds:.0f} s" for b in built))
    return versions.AGENT_IMAGE


@dataclass
class Container:
    cid: str
    url: str

    def inspect(self, fmt: str) -> str:
        return _run.run(["docker", "inspect", "--format", fmt, self.cid], timeout_s=30).stdout.strip()


def _get(url: str, timeout_s: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _chat(url: str, message: str, timeout_s: float = 30.0) -> tuple[int, dict]:
    req = urllib.request.Request(url + "/chat", data=json.dumps({"message": message}).encode())
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, {}


def _metric(url: str, key: str) -> float:
    _, body = _get(url + "/metrics")
    for line in body.decode().splitlines():
        if line.startswith(key + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.fixture
def agent(agent_image: str) -> Iterator[Container]:
    argv = [
        "docker", "run", "-d", "--label", LABEL,
        "--cpus", "0.5", "--memory", "256m", "--pids-limit", "256",
        "--read-only", "--tmpfs", "/tmp:size=16m", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
        "-e", "AGENT_WARMUP_S=1", "-e", "AGENT_WORK_MS=50",
        "-p", "127.0.0.1::8000",
        agent_image,
    ]  # fmt: skip
    cid = _run.run(argv, timeout_s=60).stdout.strip()
    try:
        port = _run.run(["docker", "port", cid, "8000/tcp"], timeout_s=30).stdout.split()[0].rsplit(":", 1)[1]
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if _get(url + "/readyz", timeout_s=2)[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                logs = _run.run(["docker", "logs", cid], check=False, timeout_s=30)
                pytest.fail(f"agent container not ready in 30 s; logs:\n{logs.stdout}{logs.stderr}")
            time.sleep(0.2)
        yield Container(cid, url)
    finally:
        _run.run(["docker", "rm", "-f", "-v", cid], check=False, timeout_s=60)


def test_image_is_small_and_tagged(agent_image: str) -> None:
    size_mb = images.image_size_bytes(agent_image) / 1e6
    print(f"{agent_image}: {size_mb:.0f} MB")
    assert size_mb < MAX_IMAGE_MB
    assert not agent_image.endswith(":latest")


def test_container_runs_as_non_root_and_answers_with_its_hostname(agent: Container) -> None:
    user = agent.inspect("{{.Config.User}}")
    assert user and user.split(":")[0] not in ("", "0", "root")
    uid = _run.run(["docker", "exec", agent.cid, "python", "-c", "import os; print(os.getuid())"], timeout_s=30)
    assert uid.stdout.strip() not in ("", "0")
    status, body = _chat(agent.url, "hello from the test")
    assert status == 200
    assert body["hostname"] == agent.inspect("{{.Config.Hostname}}")
    assert body["work_ms"] == 50


def _cgroup_cpu_ns(cid: str) -> int:
    """Total CPU the container's cgroup used, from the engine's stats (cgroup v1 or v2)."""
    import docker

    client = docker.from_env()
    try:
        stats = client.api.stats(cid, stream=False, one_shot=True)
    finally:
        client.close()
    return int(stats["cpu_stats"]["cpu_usage"]["total_usage"])


def test_cpu_stays_near_the_half_core_limit_under_load_and_metrics_count(agent: Container) -> None:
    stop_at = time.monotonic() + 12
    ok = [0] * 4
    failures: list[str] = []

    def user(i: int) -> None:
        n = 0
        while time.monotonic() < stop_at and n < 500:
            n += 1
            status, _ = _chat(agent.url, f"user {i} question {n}")
            if status == 200:
                ok[i] += 1
            else:
                failures.append(str(status))

    chats_before = _metric(agent.url, 'agent_requests_total{method="POST",path="/chat",status="200"}')
    threads = [threading.Thread(target=user, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    time.sleep(3)  # let the queue build up
    cpu0, wall0 = _cgroup_cpu_ns(agent.cid), time.monotonic()
    time.sleep(6)
    cpu1, wall1 = _cgroup_cpu_ns(agent.cid), time.monotonic()
    for t in threads:
        t.join(timeout=60)
    cores = (cpu1 - cpu0) / 1e9 / (wall1 - wall0)
    sent = sum(ok)
    chats_after = _metric(agent.url, 'agent_requests_total{method="POST",path="/chat",status="200"}')
    print(f"container CPU under load: {cores:.2f} cores (limit 0.5); {sent} chats in ~12 s ({sent / 12:.1f}/s)")
    assert not failures
    assert chats_after - chats_before == sent
    # The quota caps it at 0.5; below ~0.35 means the load did not saturate it or, on a busy
    # 2-core host, other processes took the CPU (seen at load average 6.5: 0.34).
    assert cores <= 0.6, f"container used {cores:.2f} cores with --cpus 0.5: the limit is not enforced"
    assert cores >= 0.3, f"container used only {cores:.2f} of its 0.5 cores under saturating load (host busy?)"
    # 0.5 core / 50 ms per chat = 10 chats/s at most
    assert sent / 12 < 12


def test_docker_stop_drains_queued_chats(agent: Container) -> None:
    results: list[int] = []
    threads = [threading.Thread(target=lambda i=i: results.append(_chat(agent.url, f"drain {i}")[0])) for i in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while _metric(agent.url, "agent_inflight_requests") < 2:
        assert time.monotonic() < deadline, "chats never queued up"
        time.sleep(0.02)
    _run.run(["docker", "stop", "-t", "20", agent.cid], timeout_s=60)
    for t in threads:
        t.join(timeout=30)
    assert results == [200] * 4
    assert agent.inspect("{{.State.ExitCode}}") in ("0", "143")
