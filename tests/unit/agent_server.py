"""A real `python -m scalelab.agent` on a free 127.0.0.1 port, for the agent's unit tests."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Agent:
    proc: subprocess.Popen[bytes]
    url: str

    def get(self, path: str, timeout_s: float = 10.0) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=timeout_s) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def chat(self, message: str = "hello", timeout_s: float = 30.0) -> tuple[int, dict]:
        req = urllib.request.Request(
            self.url + "/chat", data=json.dumps({"message": message}).encode(), headers={"content-type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout_s) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")

    def metric(self, name: str, labels: str = "") -> float:
        """The value of one sample, e.g. metric("agent_requests_total", 'method="POST",path="/chat",status="200"')."""
        _, body = self.get("/metrics")
        key = f"{name}{{{labels}}}" if labels else name
        for line in body.decode().splitlines():
            if line.startswith(key + " "):
                return float(line.rsplit(" ", 1)[1])
        return 0.0


def metric_lines(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            m = re.match(r"^(\S+) (\S+)$", line)
            assert m, f"bad exposition line: {line!r}"
            out[m.group(1)] = float(m.group(2))
    return out


@contextmanager
def running_agent(timeout_s: float = 20.0, **env: str) -> Iterator[Agent]:
    port = free_port()
    full_env = {**os.environ, "AGENT_HOST": "127.0.0.1", "AGENT_PORT": str(port), "AGENT_WARMUP_S": "0", **env}
    proc = subprocess.Popen([sys.executable, "-m", "scalelab.agent"], env=full_env, stderr=subprocess.PIPE)
    agent = Agent(proc, f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"agent exited {proc.returncode}: {proc.stderr.read().decode()[-2000:]}")
            try:
                if agent.get("/healthz", timeout_s=1)[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"agent did not answer /healthz within {timeout_s} s")
            time.sleep(0.05)
        yield agent
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        if proc.stderr:
            proc.stderr.close()
