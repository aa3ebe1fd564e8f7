"""The kind node image choice, the kit-built kind on PATH, and the test engine's runtime wrapper."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from scalelab import kind_node
from scalelab.platforms import kind
from scalelab.versions import LOCAL_KIND_NODE_IMAGE, VERSIONS

ROOT = Path(__file__).resolve().parents[2]
PUBLISHED = VERSIONS["kind_node_image"]


def test_explicit_image_wins():
    assert kind_node.choose_node_image("my/node:v1.34.0", present=lambda ref: True) == "my/node:v1.34.0"


def test_published_image_first_when_docker_has_it():
    assert kind_node.choose_node_image(None, present=lambda ref: True) == PUBLISHED


def test_local_build_when_only_it_is_present():
    assert kind_node.choose_node_image(None, present=lambda ref: ref == LOCAL_KIND_NODE_IMAGE) == LOCAL_KIND_NODE_IMAGE


def test_published_image_when_nothing_is_local():
    """kind then pulls the published image, pinned by digest (a machine with a registry)."""
    assert kind_node.choose_node_image(None, present=lambda ref: False) == PUBLISHED


def test_local_image_is_kubernetes_1_34_and_passes_the_cgroup_v1_check():
    assert kind.node_image_for("1", LOCAL_KIND_NODE_IMAGE) == LOCAL_KIND_NODE_IMAGE


def test_local_tag_follows_the_test_cluster_kubernetes_version():
    versions_sh = (ROOT / "tests/cluster/versions.sh").read_text()
    k8s = re.search(r"^K8S_VERSION=(\S+)$", versions_sh, re.M).group(1)
    assert LOCAL_KIND_NODE_IMAGE == f"scalelab-kind-node:{k8s}"


def test_kit_built_kind_goes_on_path_only_when_none_is_there(tmp_path: Path, monkeypatch):
    bin_dir = tmp_path / "kind" / "bin-go1.26.8"
    bin_dir.mkdir(parents=True)
    (bin_dir / "kind").write_text("#!/bin/sh\n")
    (bin_dir / "kind").chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    said: list[str] = []
    kind_node.ensure_kind_on_path(said.append, cache=tmp_path)
    assert os.environ["PATH"].split(os.pathsep)[0] == str(bin_dir) and "built by the kit" in said[0]
    said.clear()
    kind_node.ensure_kind_on_path(said.append, cache=tmp_path)  # now found on PATH: nothing to do
    assert said == []


# --- .ci/runc-no-sys-resource (test engine only) ----------------------------------------------------

WRAPPER = ROOT / ".ci" / "runc-no-sys-resource"
ALL = ["CAP_CHOWN", "CAP_SYS_ADMIN", "CAP_SYS_RESOURCE"]


def _caps(extra: dict | None = None) -> dict:
    return {k: list(ALL) for k in ("bounding", "effective", "permitted", "inheritable")} | (extra or {})


def _run_wrapper(tmp_path: Path, *args: str) -> list[str]:
    """Runs the wrapper with a fake runc that records its argv; returns that argv."""
    fake = tmp_path / "fake-runc"
    fake.write_text(f"#!/bin/sh\necho \"$@\" > {tmp_path / 'argv'}\n")
    fake.chmod(0o755)
    env = {**os.environ, "SCALELAB_REAL_RUNC": str(fake)}
    subprocess.run([sys.executable, str(WRAPPER), *args], check=True, env=env, timeout=30)
    return (tmp_path / "argv").read_text().split()


def test_wrapper_drops_the_capability_from_the_bundle_and_passes_argv_through(tmp_path: Path):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "config.json").write_text(json.dumps({"process": {"capabilities": _caps()}, "root": {"path": "rootfs"}}))
    argv = ["--root", "/run/x", "--log", "/tmp/l", "create", "--bundle", str(bundle), "--pid-file", "/tmp/p", "ctr-id"]
    assert _run_wrapper(tmp_path, *argv) == argv
    doc = json.loads((bundle / "config.json").read_text())
    for values in doc["process"]["capabilities"].values():
        assert values == ["CAP_CHOWN", "CAP_SYS_ADMIN"]
    assert doc["root"] == {"path": "rootfs"}


def test_wrapper_drops_it_from_the_exec_process_file(tmp_path: Path):
    process = tmp_path / "process.json"
    process.write_text(json.dumps({"args": ["kubeadm", "init"], "capabilities": _caps()}))
    _run_wrapper(tmp_path, "exec", "--process", str(process), "--detach", "ctr-id")
    doc = json.loads(process.read_text())
    assert all("CAP_SYS_RESOURCE" not in v for v in doc["capabilities"].values()) and doc["args"] == ["kubeadm", "init"]


def test_wrapper_leaves_other_commands_and_unprivileged_bundles_alone(tmp_path: Path):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    original = json.dumps({"process": {"capabilities": {"bounding": ["CAP_CHOWN"]}}})
    (bundle / "config.json").write_text(original)
    _run_wrapper(tmp_path, "create", "--bundle", str(bundle), "id")
    assert (bundle / "config.json").read_text() == original
    assert _run_wrapper(tmp_path, "state", "id") == ["state", "id"]


@pytest.mark.parametrize("script", [".ci/engine-runtime.sh", "k8s/node-image/build.sh", "k8s/node-image/rootfs/usr/local/bin/entrypoint",
                                    "k8s/node-image/rootfs/usr/local/bin/scalelab-podnet"])
def test_scripts_parse(script: str):
    subprocess.run(["bash", "-n", str(ROOT / script)], check=True, timeout=30)
