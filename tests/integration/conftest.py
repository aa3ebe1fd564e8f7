"""Fixtures for integration tests: the real Docker engine and the real test cluster.

On a laptop without them the tests skip with a printed reason; in CI (``CI=true``) they fail
instead, so CI can never go green by skipping.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_or_skip(reason: str) -> None:
    """Skip on a developer laptop; fail in CI."""
    if in_ci():
        pytest.fail(f"required in CI but unavailable: {reason}", pytrace=False)
    pytest.skip(reason)


# --- Docker engine -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def docker_engine() -> str:
    """The Docker CLI path, once the engine answers; skips (or fails in CI) otherwise."""
    docker = shutil.which("docker")
    if docker is None:
        require_or_skip("no `docker` CLI on PATH (install Docker; on Debian: bash .ci/docker.sh)")
    proc = subprocess.run([docker, "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        require_or_skip(f"Docker engine not reachable: {proc.stderr.strip()[:200]}")
    return docker


@pytest.fixture(scope="session")
def docker_compose(docker_engine: str) -> str:
    proc = subprocess.run([docker_engine, "compose", "version"], capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        require_or_skip("the Compose v2 plugin is missing (`docker compose version` failed; see .ci/docker.sh)")
    return docker_engine


# --- test cluster (owned by tests/cluster/) ------------------------------------------------------
