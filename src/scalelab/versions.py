"""Component versions pinned in one place; `scalelab doctor` prints them.

Python dependencies are pinned in pyproject.toml; this module pins everything that is not a
Python package (images, node images, cluster components) plus the kit's own image tags.
"""

from __future__ import annotations

__all__ = ["VERSIONS", "AGENT_IMAGE", "AGENT_IMAGE_V2", "AGENT_VERSIONS", "agent_image", "LB_IMAGE", "BASE_IMAGE", "LOCAL_KIND_NODE_IMAGE",
           "component_versions"]

KIT_VERSION = "0.1.0"

#: The workload image: one versioned tag, never `:latest`.
AGENT_IMAGE = f"scalelab-ai-agent:{KIT_VERSION}"
#: The same agent with ``AGENT_VERSION=v2`` baked in (one metadata layer on top of AGENT_IMAGE):
#: its replies say ``"version": "v2"``, so a rollout's requests show which version answered.
AGENT_IMAGE_V2 = f"scalelab-ai-agent:{KIT_VERSION}-v2"
#: The version a replica reports -> the image that runs it (a scenario's ``rollout.to``).
AGENT_VERSIONS: dict[str, str] = {"v1": AGENT_IMAGE, "v2": AGENT_IMAGE_V2}
#: nginx load balancer in front of compose replicas (locally built offline, official online).
LB_IMAGE = f"scalelab-lb:{KIT_VERSION}"
#: Local Debian base image built with debootstrap + docker import (offline path).
BASE_IMAGE = "scalelab-base:bookworm-1"
#: kind node image built here without a registry (`make kind-node-image`, k8s/node-image/):
#: the test cluster's Kubernetes version (tests/cluster/versions.sh K8S_VERSION).
LOCAL_KIND_NODE_IMAGE = "scalelab-kind-node:v1.34.4"
#: Official bases used on a normal machine with registry access.
ONLINE_PYTHON_BASE = "python:3.11-slim-bookworm"
ONLINE_NGINX_IMAGE = "nginx:1.27-alpine"

VERSIONS: dict[str, str] = {
    "scalelab": KIT_VERSION,
    "kind": "v0.33.0",
    # kind node image: Kubernetes 1.34 still starts on cgroup v1 hosts (docs/hpa-controller.md §17-18).
    "kind_node_image": "kindest/node:v1.34.11@sha256:44e222ee2132dab25ff87301682f89eb82c7880ea3a1bf543bfe9708fd08d67d",
    "kubernetes_for_tests": "v1.34.4 (built from source, tests/cluster/)",
    "metrics_server": "v0.9.0",
    "compose": "v2+ (plugin)",
    "nginx_offline": "Debian bookworm nginx-light 1.22",
}


def agent_image(version: str) -> str:
    """The image tag of an agent version (``v1``, ``v2``)."""
    return AGENT_VERSIONS[version]


def component_versions() -> dict[str, str]:
    """Versions of the kit, its pinned components and the Python libraries actually installed."""
    from importlib import metadata

    out = dict(VERSIONS)
    for dist in ("locust", "docker", "kubernetes", "pandas", "matplotlib", "uvicorn"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out
