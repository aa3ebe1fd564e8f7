"""In-flight per compose replica: the gauge parsed from an agent's /metrics, read in parallel with a timeout."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from scalelab.agent.metrics import Metrics
from scalelab.platforms.compose_inflight import InflightReader, container_ip, parse_inflight


def test_parse_the_agents_own_page() -> None:
    m = Metrics(hostname="abc", work_ms=50, version="t")
    m.inflight = 4
    assert parse_inflight(m.render()) == 4.0
    assert parse_inflight("# nothing here\nother 1\n") is None


def test_container_ip_from_a_listing_entry() -> None:
    entry = {"Id": "x", "NetworkSettings": {"Networks": {"scalelab-1_default": {"IPAddress": "172.18.0.5"}}}}
    assert container_ip(entry) == "172.18.0.5"
    assert container_ip({"Id": "y", "NetworkSettings": {"Networks": {"n": {"IPAddress": ""}}}}) is None


def test_reader_answers_in_time_or_says_not_measured() -> None:
    class Agent(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            if self.server.slow:  # type: ignore[attr-defined]
                time.sleep(1.0)
            body = f"agent_inflight_requests {self.server.value}\n".encode()  # type: ignore[attr-defined]
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    servers = []
    for value, slow in ((3, False), (7, True)):
        srv = ThreadingHTTPServer(("127.0.0.1", 0), Agent)
        srv.value, srv.slow = value, slow  # type: ignore[attr-defined]
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
    assert servers[0].server_address[1] != servers[1].server_address[1]
    # one port per reader: read each fake agent through its own reader
    fast = InflightReader(timeout_s=0.3, port=servers[0].server_address[1])
    slow = InflightReader(timeout_s=0.3, port=servers[1].server_address[1])
    entry = {"Id": "c1", "NetworkSettings": {"Networks": {"n": {"IPAddress": "127.0.0.1"}}}}
    try:
        started = time.monotonic()
        assert fast.read([entry]) == {"c1": 3.0}
        assert slow.read([entry]) == {"c1": None}  # too slow: not measured this second
        assert time.monotonic() - started < 1.5
        assert fast.read([{"Id": "c2", "NetworkSettings": {}}]) == {"c2": None}
    finally:
        fast.stop()
        slow.stop()
        for srv in servers:
            srv.shutdown()
