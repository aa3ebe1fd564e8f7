"""Connection behaviour is a scenario setting: real Locust against a real agent on 127.0.0.1,
through a TCP relay that counts the connections the load generator opens (issue 18, item 2)."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest
import yaml
from agent_server import free_port, running_agent

from scalelab.load.locust import LocustProcess
from scalelab.load.plan import LoadPlan
from scalelab.scenario import apply_overrides, load_scenario

pytestmark = pytest.mark.slow


class CountingRelay:
    """127.0.0.1:port -> the agent; counts accepted client connections."""

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.server = socket.create_server(("127.0.0.1", free_port()))
        self.port = self.server.getsockname()[1]
        self.accepted = 0
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self.server.settimeout(0.2)
        while not self._stop:
            try:
                client, _ = self.server.accept()
            except OSError:
                continue
            self.accepted += 1
            upstream = socket.create_connection(self.target, timeout=10)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self._stop = True
        self.server.close()


def _load(tmp_path: Path, port: int, *overrides: str) -> tuple[int, int]:
    """Run a 6 s closed-loop load of 3 users at 3 requests/s each; (requests recorded, connections opened)."""
    base = ["load.connections=keep-alive", "load.mode=closed", "load.profile=steady", "load.baseline=3", "load.user_rps=3", "duration_s=6", "workload.work_ms=5"]
    sc = apply_overrides(load_scenario("ci-spike", sized=False), tuple(base + list(overrides))).sized(1.0)
    relay = CountingRelay(port)
    run_dir = tmp_path / "-".join(o.split("=")[-1] for o in overrides or ("default",))
    run_dir.mkdir()
    scenario_file = run_dir / "scenario.yaml"
    scenario_file.write_text(yaml.safe_dump(sc.model_dump(mode="json")), encoding="utf-8")
    plan = LoadPlan(scenario=sc, t0_epoch=time.time() + 1.0, requests_csv=run_dir / "requests.csv", status_file=None, drain_s=1.0)
    locust = LocustProcess.start(plan, host_url=f"http://127.0.0.1:{relay.port}", run_dir=run_dir, scenario_file=scenario_file)
    try:
        assert locust.wait(timeout_s=40) is not None, locust.log_tail()
    finally:
        locust.stop()
        relay.close()
    lines = (run_dir / "requests.csv").read_text().strip().splitlines()[1:]
    return len(lines), relay.accepted


def test_keep_alive_per_request_and_a_shared_pool(tmp_path: Path) -> None:
    with running_agent(AGENT_WORK_MS="5") as agent:
        port = int(agent.url.rsplit(":", 1)[1])
        requests, conns = _load(tmp_path, port)
        assert requests >= 10 and conns <= 3, (requests, conns)  # one kept-alive connection per user
        requests, conns = _load(tmp_path, port, "load.connections=per-request")
        print(f"per-request: {requests} requests over {conns} connections")
        assert requests >= 10 and conns >= requests - 2, (requests, conns)  # a new connection every request
        requests, conns = _load(tmp_path, port, "load.client_connections=1")
        assert requests >= 10 and conns == 1, (requests, conns)  # three users share one connection
