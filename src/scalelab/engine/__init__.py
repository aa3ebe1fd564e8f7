"""The Docker engine, in one place: is it up, which images it has, the API client, compose.

Every engine and compose *command* goes through `scalelab._run.run` (so ``-v`` /
``SCALELAB_DEBUG=1`` shows it); queries that need the Engine API itself (container lists,
stats streams) use one docker SDK client made by `sdk_client`. `stats` holds the Docker stats
arithmetic, `streams` the per-container stats readers.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from scalelab import _run
from scalelab.errors import CommandError, PreflightError

__all__ = [
    "ENGINE_FIX",
    "engine_version",
    "reachable",
    "require_engine",
    "sdk_client",
    "image_exists",
    "image_size_bytes",
    "compose_installed",
    "compose",
]

ENGINE_FIX = "start Docker (Docker Desktop; Debian without systemd: `bash .ci/docker.sh`, or `sudo dockerd &`), then `docker info`"


def engine_version(timeout_s: float = 15.0) -> str | None:
    """The engine's version when it answers, else None: the one "is the engine up?" check."""
    try:
        proc = _run.run(["docker", "version", "--format", "{{.Server.Version}}"], timeout_s=timeout_s)
    except CommandError:
        return None
    return proc.stdout.strip() or None


def reachable(timeout_s: float = 15.0) -> bool:
    return engine_version(timeout_s) is not None


def require_engine(timeout_s: float = 15.0) -> None:
    """PreflightError with the fix when no engine answers."""
    if not reachable(timeout_s):
        raise PreflightError("no Docker engine answers (`docker version` failed)", fix=ENGINE_FIX, lab="00-prerequisites")


def sdk_client(timeout_s: int = 30, pool: int = 10, docker_host: str = "") -> Any:
    """A docker SDK client for Engine API queries (PreflightError when the engine does not answer).

    ``pool``: connections kept to the engine, for callers that send requests from several threads;
    ``docker_host``: another daemon's URL (a kit host's ``unix://`` socket) instead of DOCKER_HOST's.
    """
    try:
        import docker
        import docker.errors
    except ImportError:  # pragma: no cover - a dependency
        raise PreflightError("the `docker` Python package is missing", fix="run `make setup`") from None
    try:
        if docker_host:
            client = docker.DockerClient(base_url=docker_host, timeout=timeout_s, max_pool_size=pool)
        else:
            client = docker.from_env(timeout=timeout_s, max_pool_size=pool)
        client.ping()
    except docker.errors.DockerException as exc:
        raise PreflightError(f"the Docker engine is not reachable: {str(exc)[:200]}", fix=ENGINE_FIX, lab="00-prerequisites") from None
    return client


def image_exists(tag: str) -> bool:
    proc = _run.run(["docker", "image", "inspect", "--format", "{{.Id}}", tag], check=False, timeout_s=30)
    return proc.returncode == 0


def image_size_bytes(tag: str) -> int:
    proc = _run.run(["docker", "image", "inspect", "--format", "{{.Size}}", tag], timeout_s=30)
    return int(proc.stdout.strip())


def compose_installed(timeout_s: float = 15.0) -> bool:
    return _run.run(["docker", "compose", "version", "--short"], check=False, timeout_s=timeout_s).returncode == 0


def compose(
    project: str,
    files: Sequence[Path],
    args: Sequence[str],
    *,
    env_file: Path | None = None,
    project_dir: Path | None = None,
    timeout_s: float = 300.0,
    fix: str = "",
    env: Mapping[str, str] | None = None,
) -> str:
    """``docker compose -p PROJECT -f FILE... [--env-file F] [--project-directory D] ARGS``; returns stdout.

    The env file is passed on the command line and its values also in the environment, so
    interpolation works the same with every Compose v2 release. ``env``: more variables (DOCKER_HOST).
    """
    argv: list[str | os.PathLike[str]] = ["docker", "compose", "-p", project]
    for f in files:
        argv += ["-f", f]
    if env_file is not None:
        argv += ["--env-file", env_file]
    if project_dir is not None:
        argv += ["--project-directory", project_dir]
    argv += list(args)
    return _run.run(argv, timeout_s=timeout_s, fix=fix, env=env).stdout
