"""Small helpers the live tests share: a free port on 127.0.0.1, the docker CLI, the engine's swarm state."""

from __future__ import annotations

import socket
import subprocess

import pytest


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def docker(*args: str) -> str:
    """``docker ARGS`` on the engine; its stdout (raises when it fails)."""
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True, timeout=120).stdout


def swarm_state() -> str:
    """The engine's ``Swarm.LocalNodeState``: ``inactive`` when it is in no swarm."""
    return docker("info", "--format", "{{.Swarm.LocalNodeState}}").strip()


def skip_if_in_a_swarm() -> None:
    """The swarm tests need an engine in no swarm: they never touch a swarm the kit did not make."""
    if swarm_state() != "inactive":
        pytest.skip("this engine is already in a swarm; the swarm tests need one that is not (they never touch a foreign swarm)")
