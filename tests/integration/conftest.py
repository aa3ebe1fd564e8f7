"""Fixtures for integration tests: the real Docker engine and the real test cluster.

On a laptop without them the tests skip with a printed reason; in CI (``CI=true``) they fail
instead, so CI can never go green by skipping.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import pandas as pd


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def lost_from(up: pd.Series, t_fault: float, within_s: float = 5.0) -> float:
    """The first second (index of ``up``: a host's hosts.csv ``up`` by ``t_s``) that shows the host down after a loss at
    ``t_fault``; asserts it comes within ``within_s`` and that the host stays down after it. When the kill shows in the
    per-second rows depends on how long the killed container's cgroup lingers (a few tenths of a second, sometimes more)."""
    after = up[up.index > t_fault]
    down = after.index[after == 0]
    assert len(down) and down[0] <= t_fault + within_s, f"host not down within {within_s} s of the loss at {t_fault} s:\n{after.head(8)}"
    assert (after[after.index >= down[0]] == 0).all(), f"host up again after the loss:\n{after}"
    return float(down[0])


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


# --- compose arm: the kit's images (owned by the compose-arm tests) ------------------------------


@pytest.fixture(scope="session")
def scalelab_images(docker_compose: str) -> str:
    """The ai-agent and nginx images are built (`make image`); skips (fails in CI) otherwise."""
    from scalelab import versions

    for image in (versions.AGENT_IMAGE, versions.LB_IMAGE):
        proc = subprocess.run([docker_compose, "image", "inspect", image], capture_output=True, text=True, timeout=30)
        if proc.returncode != 0:
            require_or_skip(f"image {image} is not built (run `make image`)")
    return docker_compose


# --- test cluster (owned by tests/cluster/) ------------------------------------------------------


@dataclass(frozen=True)
class KubeCluster:
    """A reachable Kubernetes cluster: kubeconfig file and context (see tests/cluster/)."""

    kubeconfig: Path
    context: str
    logs_dir: Path

    def api_client(self):
        """A fresh ApiClient for this cluster (no global kubernetes config state)."""
        from kubernetes import config

        return config.new_client_from_config(config_file=str(self.kubeconfig), context=self.context)


def _test_cluster_home() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return Path(os.environ.get("SCALELAB_CACHE") or cache / "scalelab") / "test-cluster"


@pytest.fixture(scope="session")
def test_cluster() -> KubeCluster:
    """The single-node cluster `bash tests/cluster/cluster.sh up` starts (context scalelab-test).

    SCALELAB_TEST_KUBECONFIG / SCALELAB_TEST_CONTEXT point the tests at another cluster.
    """
    home = _test_cluster_home()
    kubeconfig = Path(os.environ.get("SCALELAB_TEST_KUBECONFIG") or home / "kubeconfig")
    context = os.environ.get("SCALELAB_TEST_CONTEXT") or "scalelab-test"
    if not kubeconfig.is_file():
        require_or_skip(f"no test cluster: {kubeconfig} is missing (run `bash tests/cluster/cluster.sh up`)")
    try:
        import urllib3
        from kubernetes import client
        from kubernetes.config import ConfigException
    except ImportError:
        require_or_skip("the `kubernetes` Python client is not installed (pip install 'kubernetes>=37,<38')")
    cluster = KubeCluster(kubeconfig=kubeconfig, context=context, logs_dir=home / "logs")
    try:
        with cluster.api_client() as api:
            version = client.VersionApi(api).get_code(_request_timeout=10)
    except (ConfigException, client.ApiException, urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
        require_or_skip(f"test cluster {context} in {kubeconfig} not reachable: {exc!s:.200}")
    print(f"test cluster: context {context}, Kubernetes {version.git_version}")
    return cluster


@pytest.fixture(scope="session")
def root_user() -> None:
    """Root: `ss -ltnp` names the processes of other users' sockets only for root; skips (fails in CI) otherwise."""
    if os.geteuid() != 0:
        require_or_skip("listing every process's listening sockets (`ss -ltnp`) needs root")


@pytest.fixture()
def test_cluster_processes(test_cluster: KubeCluster) -> dict[str, int]:
    """``{component: pid}`` of the test cluster's live processes (its PID files, see tests/cluster/cluster.sh)."""
    pid_dir = test_cluster.logs_dir.parent / "pids"
    pids = {}
    for f in sorted(pid_dir.glob("*.pid")):
        pid = int(f.read_text().strip() or 0)
        if pid and Path(f"/proc/{pid}").exists():
            pids[f.stem] = pid
    if not pids:
        require_or_skip(f"the test cluster's processes do not run on this machine (no live PID in {pid_dir})")
    return pids
