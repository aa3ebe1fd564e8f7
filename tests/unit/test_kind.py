"""kind: node image choice from the host's cgroup version, the commands built, the tool check."""

from __future__ import annotations

import pytest

from scalelab.errors import PreflightError
from scalelab.platforms import kind
from scalelab.versions import VERSIONS


def test_pinned_image_is_kubernetes_1_34_by_digest():
    image = VERSIONS["kind_node_image"]
    assert image.startswith("kindest/node:v1.34.") and "@sha256:" in image


@pytest.mark.parametrize("cgroup", ["1", "2"])
def test_pinned_image_runs_on_both_cgroup_versions(cgroup: str):
    assert kind.node_image_for(cgroup) == VERSIONS["kind_node_image"]


def test_cgroup_v1_refuses_kubernetes_1_35_and_newer_with_an_explanation():
    with pytest.raises(PreflightError) as err:
        kind.node_image_for("1", "kindest/node:v1.35.5")
    assert "cgroup v1" in err.value.message and "1.34" in err.value.fix
    assert err.value.lab == "03-kind-cluster-and-hpa"
    assert kind.node_image_for("2", "kindest/node:v1.37.0") == "kindest/node:v1.37.0"
    assert kind.node_image_for("1", "kindest/node:v1.33.12") == "kindest/node:v1.33.12"


def test_argv():
    image = VERSIONS["kind_node_image"]
    assert kind.create_argv("k8s/kind-cluster.yaml", image) == [
        "kind", "create", "cluster", "--name", "scalelab", "--config", "k8s/kind-cluster.yaml", "--image", image, "--wait", "120s",
    ]
    assert kind.load_argv() == ["kind", "load", "docker-image", "scalelab-ai-agent:0.1.0", "--name", "scalelab"]
    assert kind.delete_argv() == ["kind", "delete", "cluster", "--name", "scalelab"]


def test_missing_tools_are_named_with_their_install_fix():
    with pytest.raises(PreflightError) as err:
        kind.check_tools(lambda tool: None if tool in ("kind", "kubectl") else "/usr/bin/" + tool)
    assert "kind, kubectl" in err.value.message
    assert "kind.sigs.k8s.io" in err.value.fix and "kubectl" in err.value.fix
    kind.check_tools(lambda tool: "/usr/bin/" + tool)  # all present: no error
