"""How much of the agent's CPU is the "inference" and how much is uvicorn + the ASGI app.

Starts `python -m scalelab.agent` on a free 127.0.0.1 port at AGENT_WORK_MS=0 and at the
default 50 ms, sends N chats over one keep-alive connection, and reads the server's own
`process_cpu_seconds_total` and `agent_work_cpu_seconds_total` from /metrics before and after.

    .venv/bin/python benchmarks/bench_agent.py [--requests 200] [--work-ms 50]

Prints CPU-ms per request, requests/s per core, and the framework overhead as a share of the
work (target: at most 10 %).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import time


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _metrics(conn: http.client.HTTPConnection) -> dict[str, float]:
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    return {k: float(v) for k, v in (line.rsplit(" ", 1) for line in text.splitlines() if line and line[0] != "#")}


def measure(work_ms: float, n: int) -> dict[str, float]:
    port = _free_port()
    env = {**os.environ, "AGENT_PORT": str(port), "AGENT_WORK_MS": str(work_ms), "AGENT_WARMUP_S": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "scalelab.agent"], env=env, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                conn.request("GET", "/healthz")
                conn.getresponse().read()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit("agent did not start") from None
                time.sleep(0.05)
        body = json.dumps({"message": "how many pods do I need for a spike?"})
        for _ in range(5):  # warm-up: imports, first-call paths
            conn.request("POST", "/chat", body=body)
            conn.getresponse().read()
        before, t0 = _metrics(conn), time.perf_counter()
        for _ in range(n):
            conn.request("POST", "/chat", body=body)
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 200, resp.status
        wall = time.perf_counter() - t0
        after = _metrics(conn)
        conn.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    # The two /metrics calls themselves are in the window; subtract one of them (measured at work 0 it is ~0.1-0.3 ms).
    cpu_ms = (after["process_cpu_seconds_total"] - before["process_cpu_seconds_total"]) * 1000 / n
    work_cpu_ms = (after["agent_work_cpu_seconds_total"] - before["agent_work_cpu_seconds_total"]) * 1000 / n
    return {"cpu_ms": cpu_ms, "work_cpu_ms": work_cpu_ms, "wall_ms": wall * 1000 / n}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--work-ms", type=float, default=50.0)
    args = parser.parse_args()
    n = max(10, min(args.requests, 5000))
    zero = measure(0, n * 5)
    full = measure(args.work_ms, n)
    overhead_ms = full["cpu_ms"] - full["work_cpu_ms"]
    print(f"agent benchmark: {n} sequential chats at AGENT_WORK_MS={args.work_ms:g}, {n * 5} at 0 (one keep-alive client)")
    print(f"  CPU per request at work 0          : {zero['cpu_ms']:.3f} ms  -> {1000 / zero['cpu_ms']:.0f} req/s per core (framework only)")
    print(f"  CPU per request at work {args.work_ms:g}         : {full['cpu_ms']:.2f} ms  -> {1000 / full['cpu_ms']:.1f} req/s per core")
    print(f"    of which the work function       : {full['work_cpu_ms']:.2f} ms")
    print(f"    of which uvicorn + app           : {overhead_ms:.2f} ms")
    print(f"  framework overhead share of work   : {overhead_ms / full['work_cpu_ms'] * 100:.1f} % (at work 0: {zero['cpu_ms'] / args.work_ms * 100:.1f} %; target <= 10 %)")
    print(f"  wall time per request (no queueing): {full['wall_ms']:.2f} ms")


if __name__ == "__main__":
    main()
