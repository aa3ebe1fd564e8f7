"""The lab's kind cluster: create it from ``k8s/kind-cluster.yaml``, load the image, install
metrics-server, and delete it again.

Checks first (docker, kind, kubectl; a node image that starts on this host's cgroup version),
then acts; ``down`` of a missing cluster is a no-op. Every command goes through `_run.run`.
The argv builders and the image choice are pure functions (unit-tested).
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from scalelab import _run
from scalelab.engine import image_exists
from scalelab.errors import CommandError, PreflightError
from scalelab.kind_node import choose_node_image, ensure_kind_on_path
from scalelab.platforms.k8s_client import KIND_CLUSTER, KIND_CONTEXT, resolve_target
from scalelab.platforms.k8s_manifests import find_k8s_dir, load_yaml_docs
from scalelab.versions import AGENT_IMAGE, AGENT_IMAGE_V2, VERSIONS

__all__ = [
    "TOOLS",
    "check_tools",
    "host_cgroup_version",
    "node_image_for",
    "create_argv",
    "load_argv",
    "delete_argv",
    "cluster_exists",
    "cluster_up",
    "cluster_down",
    "install_metrics_server",
    "KIND_NETWORK",
]

LAB = "03-kind-cluster-and-hpa"
#: the Docker network kind creates for its node containers (and never removes itself)
KIND_NETWORK = "kind"
#: under the kit's cache: the id of the ``kind`` network when the kit's ``cluster up`` created it
NETWORK_OWNER_FILE = "kind-network-owner"
#: tool -> how to install it
TOOLS = {
    "docker": "install Docker (https://docs.docker.com/engine/install/) and start it",
    "kind": f"install kind {VERSIONS['kind']}: https://kind.sigs.k8s.io/docs/user/quick-start/#installation",
    "kubectl": "install kubectl: https://kubernetes.io/docs/tasks/tools/",
}
#: Highest Kubernetes minor whose kubelet starts on a cgroup v1 host by default (docs/hpa-controller.md §17).
MAX_MINOR_ON_CGROUP_V1 = 34
Echo = Callable[[str], None]


def check_tools(which: Callable[[str], str | None] = shutil.which) -> None:
    """PreflightError naming every missing tool and how to install it."""
    missing = [t for t in TOOLS if which(t) is None]
    if missing:
        raise PreflightError(
            f"missing tool(s) for the kind cluster: {', '.join(missing)}",
            fix="; ".join(TOOLS[t] for t in missing),
            lab=LAB,
        )


def host_cgroup_version() -> str:
    """``"1"`` or ``"2"``: what the Docker engine (which runs the kind nodes) reports."""
    try:
        out = _run.run(["docker", "info", "--format", "{{.CgroupVersion}}"], timeout_s=30).stdout.strip()
    except CommandError as exc:
        raise PreflightError(f"the Docker engine does not answer: {exc.stderr.strip()[:200]}", fix="start Docker (Linux: `sudo systemctl start docker`)", lab=LAB) from None
    if out in ("1", "2"):
        return out
    return "2" if Path("/sys/fs/cgroup/cgroup.controllers").exists() else "1"


def _minor(image: str) -> int | None:
    match = re.search(r":v1\.(\d+)\.", image)
    return int(match.group(1)) if match else None


def node_image_for(cgroup_version: str, image: str | None = None) -> str:
    """The node image to create the cluster with: the pinned one unless given; refuses images
    whose kubelet will not start on a cgroup v1 host."""
    chosen = image or VERSIONS["kind_node_image"]
    minor = _minor(chosen)
    if cgroup_version == "1" and minor is not None and minor > MAX_MINOR_ON_CGROUP_V1:
        raise PreflightError(
            f"this host uses cgroup v1, and the kubelet of Kubernetes 1.{minor} ({chosen}) refuses to start on it (failCgroupV1 defaults to true since 1.35)",
            fix=f"use a Kubernetes <= 1.{MAX_MINOR_ON_CGROUP_V1} node image (the pinned default {VERSIONS['kind_node_image']}), or move to a cgroup v2 host",
            lab=LAB,
        )
    return chosen


def create_argv(config: str | Path, image: str, name: str = KIND_CLUSTER) -> list[str]:
    return ["kind", "create", "cluster", "--name", name, "--config", str(config), "--image", image, "--wait", "120s"]


def load_argv(image: str = AGENT_IMAGE, name: str = KIND_CLUSTER) -> list[str]:
    return ["kind", "load", "docker-image", image, "--name", name]


def delete_argv(name: str = KIND_CLUSTER) -> list[str]:
    return ["kind", "delete", "cluster", "--name", name]


def cluster_exists(name: str = KIND_CLUSTER) -> bool:
    out = _run.run(["kind", "get", "clusters"], timeout_s=60).stdout
    return name in out.split()


def _network_id(name: str = KIND_NETWORK) -> str | None:
    proc = _run.run(["docker", "network", "inspect", "--format", "{{.Id}}", name], check=False, timeout_s=30)
    return (proc.stdout.strip() or None) if proc.returncode == 0 else None


def _owner_file() -> Path:
    from scalelab.images import cache_dir

    return cache_dir() / NETWORK_OWNER_FILE


def _record_network_owner(existed_before: bool) -> None:
    """After a create: remember the ``kind`` network's id if it did not exist before (the kit made it)."""
    net = None if existed_before else _network_id()
    if net:
        path = _owner_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(net + "\n", encoding="utf-8")


def _remove_owned_network(echo: Echo) -> None:
    """Remove the ``kind`` network if the kit created it and no container uses it any more."""
    path = _owner_file()
    try:
        owned = path.read_text(encoding="utf-8").strip()
    except OSError:
        return
    net = _network_id()
    if net is None or net != owned:
        path.unlink(missing_ok=True)  # gone, or re-created by someone else: not ours
        return
    users = _run.run(["docker", "network", "inspect", "--format", "{{len .Containers}}", KIND_NETWORK], check=False, timeout_s=30).stdout.strip()
    if users not in ("", "0"):
        echo(f"leaving the Docker network '{KIND_NETWORK}': {users} container(s) still use it")
        return
    echo(f"removing the Docker network '{KIND_NETWORK}' (created by the kit's `cluster up`)")
    _run.run(["docker", "network", "rm", KIND_NETWORK], check=False, timeout_s=60)
    path.unlink(missing_ok=True)


def _require_image(image: str) -> None:
    proc = _run.run(["docker", "image", "inspect", "--format", "{{.Id}}", image], check=False, timeout_s=30)
    if proc.returncode != 0:
        raise PreflightError(f"the image {image} is not built yet", fix="build it: `scalelab image` (make image)", lab=LAB)


def cluster_up(*, image: str | None = None, agent_image: str = AGENT_IMAGE, k8s_dir: str | None = None, timeout_s: float = 300.0, echo: Echo = print) -> str:
    """Create (or reuse) the kind cluster, load the agent image, install metrics-server.

    Returns the kubectl context. Idempotent: an existing cluster is reused.
    """
    ensure_kind_on_path(echo)
    check_tools()
    folder = find_k8s_dir(k8s_dir)
    config = folder / "kind-cluster.yaml"
    node_image = node_image_for(host_cgroup_version(), choose_node_image(image))
    _require_image(agent_image)
    if cluster_exists():
        echo(f"kind cluster '{KIND_CLUSTER}' already exists: reusing it")
    else:
        echo(f"creating kind cluster '{KIND_CLUSTER}' ({node_image.split('@')[0]}, 1 control plane + 2 workers); this takes 1-3 minutes")
        started = time.monotonic()
        network_existed = _network_id() is not None
        try:
            _run.run(create_argv(config, node_image), capture=False, timeout_s=timeout_s, fix="read kind's output above; `scalelab cluster down` cleans up a half-created cluster")
        except CommandError:
            _record_network_owner(network_existed)
            _run.run(delete_argv(), check=False, timeout_s=120)
            _remove_owned_network(echo)
            raise
        _record_network_owner(network_existed)
        echo(f"kind cluster created in {time.monotonic() - started:.0f} s")
    echo(f"loading {agent_image} into the nodes")
    _run.run(load_argv(agent_image), timeout_s=timeout_s, fix=f"is the image built? `docker image ls {agent_image.split(':')[0]}`")
    if agent_image == AGENT_IMAGE and image_exists(AGENT_IMAGE_V2):  # rollouts (lab 11) roll to it
        echo(f"loading {AGENT_IMAGE_V2} into the nodes (rollouts)")
        _run.run(load_argv(AGENT_IMAGE_V2), timeout_s=timeout_s, fix="rebuild it: `scalelab image`")
    install_metrics_server(k8s_dir=str(folder), timeout_s=timeout_s, echo=echo)
    echo(f"cluster ready: kubectl context {KIND_CONTEXT}")
    return KIND_CONTEXT


def install_metrics_server(*, kubeconfig: str | None = None, context: str | None = None, k8s_dir: str | None = None, timeout_s: float = 300.0, echo: Echo = print) -> None:
    """Server-side apply ``k8s/metrics-server.yaml`` and wait (bounded) until metrics.k8s.io serves."""
    from kubernetes import dynamic

    from scalelab.platforms.k8s_cluster import connect, metrics_api_problem
    from scalelab.poll import poll_until

    target = resolve_target(kubeconfig, context)
    api = connect(target)
    docs = load_yaml_docs(find_k8s_dir(k8s_dir) / "metrics-server.yaml")
    echo(f"installing metrics-server ({len(docs)} objects)")
    dyn = dynamic.DynamicClient(api)
    for doc in docs:
        _apply(dyn, doc)
    echo("waiting for metrics.k8s.io to serve (first scrapes take ~30 s)")
    last: list[Any] = []

    def serving() -> bool:
        last[:] = [metrics_api_problem(api)]
        return last[0] is None

    if not poll_until(serving, timeout_s=timeout_s, interval_s=3.0):
        raise last[0]


def _apply(dyn: Any, doc: dict[str, Any]) -> None:
    res = dyn.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
    ns = (doc.get("metadata") or {}).get("namespace") if res.namespaced else None
    dyn.server_side_apply(res, body=doc, namespace=ns, field_manager="scalelab", force_conflicts=True)


def cluster_down(name: str = KIND_CLUSTER, *, echo: Echo = print) -> bool:
    """Delete the kind cluster (and the ``kind`` network if the kit created it); False when there is no cluster."""
    ensure_kind_on_path(echo)
    if shutil.which("kind") is None:
        echo("kind is not installed: there is no kind cluster to delete")
        return False
    if not cluster_exists(name):
        echo(f"no kind cluster '{name}': nothing to delete")
        _remove_owned_network(echo)
        return False
    echo(f"deleting kind cluster '{name}'")
    _run.run(delete_argv(name), timeout_s=180)
    _remove_owned_network(echo)
    return True
