"""The ai-agent workload: CPU cost, readiness, metrics, errors, graceful shutdown.

Hermetic: real uvicorn subprocesses on free 127.0.0.1 ports, or the ASGI app called directly.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import signal
import threading
import time

import pytest
from agent_server import metric_lines, running_agent

from scalelab.agent import AgentConfig, create_app, do_work, reply_text


def wait_until_in_flight(agent, timeout_s: float = 5) -> None:
    """Wait until the agent counts one chat in flight."""
    deadline = time.monotonic() + timeout_s
    while agent.metric("agent_inflight_requests") != 1:
        assert time.monotonic() < deadline, "the chat never showed up as in flight"
        time.sleep(0.02)


# --- pure pieces -------------------------------------------------------------------------------


def test_reply_is_deterministic_and_independent_of_work() -> None:
    a = do_work("what is a pod?", 1).reply
    b = do_work("what is a pod?", 5).reply
    assert a == b == reply_text("what is a pod?")
    assert reply_text("what is a node?") != a


def test_work_spends_its_cpu_budget() -> None:
    for budget in (5, 20):
        result = do_work("x", budget)
        assert budget <= result.cpu_ms < budget + 5
    assert do_work("x", 0).rounds == 0


def test_config_from_env_validates_and_names_the_variable() -> None:
    cfg = AgentConfig.from_env({"AGENT_WORK_MS": "80", "AGENT_WARMUP_S": "1.5", "AGENT_PORT": "9000"})
    assert (cfg.work_ms, cfg.warmup_s, cfg.port, cfg.host) == (80, 1.5, 9000, "127.0.0.1")
    with pytest.raises(ValueError, match="AGENT_WORK_MS"):
        AgentConfig.from_env({"AGENT_WORK_MS": "fast"})
    with pytest.raises(ValueError, match="AGENT_PORT"):
        AgentConfig.from_env({"AGENT_PORT": "70000"})
    assert AgentConfig.from_env({"AGENT_VERSION": "v2"}).version == "v2"
    with pytest.raises(ValueError, match="AGENT_VERSION"):
        AgentConfig.from_env({"AGENT_VERSION": "v 2;rm"})


# --- the ASGI app, called directly --------------------------------------------------------------


def _call(app, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(event: dict) -> None:
        sent.append(event)

    scope = {"type": "http", "method": method, "path": path, "headers": []}
    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], sent[1]["body"]


def test_app_routes_and_errors() -> None:
    app = create_app(AgentConfig(work_ms=1, warmup_s=0))
    status, body = _call(app, "POST", "/chat", b'{"message": "hi there"}')
    assert status == 200
    data = json.loads(body)
    assert data["reply"] == reply_text("hi there") and data["hostname"] and data["work_ms"] == 1
    assert data["version"] == "v1"  # AGENT_VERSION unset: the v1 image
    assert _call(app, "POST", "/chat", b"not json")[0] == 400
    assert _call(app, "POST", "/chat", b'{"msg": 1}')[0] == 400
    assert _call(app, "GET", "/chat")[0] == 405
    assert _call(app, "GET", "/nope")[0] == 404
    assert _call(app, "POST", "/chat", b'{"message": "' + b"x" * 70_000 + b'"}')[0] == 413
    status, text = _call(app, "GET", "/metrics")
    samples = metric_lines(text.decode())
    assert samples['agent_requests_total{method="POST",path="/chat",status="200"}'] == 1
    assert samples['agent_requests_total{method="POST",path="/chat",status="400"}'] == 2
    assert samples['agent_requests_total{method="GET",path="other",status="404"}'] == 1
    assert samples["agent_inflight_requests"] == 0


# --- a real uvicorn subprocess ------------------------------------------------------------------


def _server_cpu_per_chat_ms(work_ms: int, n: int = 10) -> float:
    with running_agent(AGENT_WORK_MS=str(work_ms)) as agent:
        agent.chat("warm up")
        before = agent.metric("process_cpu_seconds_total")
        for i in range(n):
            assert agent.chat(f"question {i}")[0] == 200
        after = agent.metric("process_cpu_seconds_total")
    return (after - before) * 1000 / n


def test_cpu_per_request_tracks_agent_work_ms() -> None:
    light = _server_cpu_per_chat_ms(20)
    heavy = _server_cpu_per_chat_ms(80)
    print(f"server CPU per chat: {light:.1f} ms at 20 ms work, {heavy:.1f} ms at 80 ms work")
    assert 20 <= light < 30
    assert 80 <= heavy < 95
    assert 3.2 < heavy / light < 4.3


def test_readiness_is_false_during_warmup_then_true() -> None:
    with running_agent(AGENT_WARMUP_S="1.5", AGENT_WORK_MS="1") as agent:
        status, body = agent.get("/readyz")
        assert status == 503 and json.loads(body)["ready"] is False
        assert agent.get("/healthz")[0] == 200  # alive while warming up
        assert agent.metric("agent_ready") == 0
        deadline = time.monotonic() + 10
        while agent.get("/readyz")[0] != 200:
            assert time.monotonic() < deadline, "never became ready"
            time.sleep(0.1)
        assert agent.metric("agent_ready") == 1


def test_metrics_count_the_requests_sent_and_latency_histogram() -> None:
    with running_agent(AGENT_WORK_MS="2") as agent:
        for i in range(7):
            assert agent.chat(f"m{i}")[0] == 200
        for _ in range(3):
            assert agent.get("/healthz")[0] == 200
        _, text = agent.get("/metrics")
    s = metric_lines(text.decode())
    assert s['agent_requests_total{method="POST",path="/chat",status="200"}'] == 7
    assert s['agent_requests_total{method="GET",path="/healthz",status="200"}'] >= 3
    assert s['agent_request_duration_seconds_count{path="/chat"}'] == 7
    assert s['agent_request_duration_seconds_bucket{path="/chat",le="+Inf"}'] == 7
    assert s['agent_request_duration_seconds_sum{path="/chat"}'] >= 7 * 0.002
    assert s["agent_work_cpu_seconds_total"] >= 7 * 0.002


def test_healthz_answers_while_a_slow_chat_runs_and_inflight_counts_it() -> None:
    with running_agent(AGENT_WORK_MS="1500") as agent:
        results: list[int] = []
        worker = threading.Thread(target=lambda: results.append(agent.chat("slow")[0]))
        worker.start()
        wait_until_in_flight(agent)
        start = time.monotonic()
        assert agent.get("/healthz", timeout_s=2)[0] == 200
        assert time.monotonic() - start < 0.5
        worker.join(timeout=30)
        assert results == [200]
        assert agent.metric("agent_inflight_requests") == 0


def test_sigterm_lets_an_inflight_chat_finish_then_exits() -> None:
    with running_agent(AGENT_WORK_MS="1500") as agent:
        results: list[tuple[int, dict]] = []
        worker = threading.Thread(target=lambda: results.append(agent.chat("finish me")))
        worker.start()
        wait_until_in_flight(agent)
        agent.proc.send_signal(signal.SIGTERM)
        worker.join(timeout=30)
        assert results and results[0][0] == 200 and results[0][1]["reply"] == reply_text("finish me")
        # uvicorn re-raises SIGTERM once drained (exit -15, i.e. 143 in a container), or exits 0.
        assert agent.proc.wait(timeout=10) in (0, -signal.SIGTERM)
        with pytest.raises(OSError):
            agent.get("/healthz", timeout_s=1)


def test_sigterm_with_drain_off_cuts_the_inflight_chat() -> None:
    """AGENT_DRAIN=0 (the rollout ladder's first rung): SIGTERM ends the process at once, so the
    chat in flight gets no answer (the connection is closed under it), where the default drains."""
    with running_agent(AGENT_WORK_MS="1500", AGENT_DRAIN="0") as agent:
        errors: list[BaseException] = []
        results: list[tuple[int, dict]] = []

        def call() -> None:
            try:
                results.append(agent.chat("cut me"))
            except (OSError, http.client.HTTPException) as exc:
                errors.append(exc)

        worker = threading.Thread(target=call)
        worker.start()
        wait_until_in_flight(agent)
        agent.proc.send_signal(signal.SIGTERM)
        assert agent.proc.wait(timeout=5) == 128 + signal.SIGTERM
        worker.join(timeout=30)
        assert not results and errors, f"the chat was answered: {results}"


def test_agent_drain_flag_is_checked() -> None:
    assert AgentConfig.from_env({"AGENT_DRAIN": "0"}).drain is False
    assert AgentConfig.from_env({"AGENT_DRAIN": "true"}).drain is True
    assert AgentConfig.from_env({}).drain is True
    with pytest.raises(ValueError, match="AGENT_DRAIN must be 1 or 0"):
        AgentConfig.from_env({"AGENT_DRAIN": "maybe"})


def test_work_is_abandoned_when_the_client_disconnects() -> None:
    """A client that gives up (timeout, closed connection) does not keep the replica busy."""
    app = create_app(AgentConfig(work_ms=3000, warmup_s=0))
    sent: list[dict] = []
    calls = 0

    async def receive() -> dict:
        nonlocal calls
        calls += 1
        if calls == 1:
            return {"type": "http.request", "body": b'{"message": "slow"}', "more_body": False}
        await asyncio.sleep(0.1)  # the client waits a little, then hangs up
        return {"type": "http.disconnect"}

    async def send(event: dict) -> None:
        sent.append(event)

    start = time.perf_counter()
    asyncio.run(app({"type": "http", "method": "POST", "path": "/chat", "headers": []}, receive, send))
    elapsed = time.perf_counter() - start
    assert elapsed < 1.5, f"work went on for {elapsed:.2f} s after the client left"
    assert sent[0]["status"] == 499
    assert app.metrics.abandoned == 1
    assert "agent_abandoned_requests_total 1" in app.metrics.render()
