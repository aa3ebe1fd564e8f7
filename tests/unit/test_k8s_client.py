"""Which cluster scalelab talks to, and the errors for a wrong file or context (no network)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from scalelab.errors import PreflightError
from scalelab.platforms.k8s_client import KIND_CONTEXT, Target, new_api_client, resolve_target


def test_default_is_the_kind_context_in_the_home_kubeconfig():
    t = resolve_target(environ={"HOME": "/home/ann"})
    assert t == Target("/home/ann/.kube/config", KIND_CONTEXT)
    assert t.kind_cluster == "scalelab"


def test_kubeconfig_env_or_flag_uses_its_current_context_unless_one_is_given():
    assert resolve_target(environ={"KUBECONFIG": "/a:/b", "HOME": "/h"}) == Target("/a", None)
    assert resolve_target("/x/kc", environ={"HOME": "/h"}) == Target("/x/kc", None)
    t = resolve_target("/x/kc", "scalelab-test", environ={"KUBECONFIG": "/a"})
    assert t == Target("/x/kc", "scalelab-test") and t.kind_cluster is None
    assert resolve_target(context="other", environ={"HOME": "/h"}).context == "other"


def _kubeconfig(path: Path, contexts: list[str]) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": n, "context": {"cluster": "c", "user": "u"}} for n in contexts],
                "current-context": contexts[0],
            }
        )
    )
    return path


def test_missing_kubeconfig_says_how_to_get_a_cluster(tmp_path: Path):
    with pytest.raises(PreflightError) as err:
        new_api_client(Target(str(tmp_path / "none"), KIND_CONTEXT))
    assert "scalelab cluster up" in err.value.fix
    with pytest.raises(PreflightError) as err:
        new_api_client(Target(str(tmp_path / "none"), "scalelab-test"))
    assert "--kubeconfig" in err.value.fix


def test_wrong_context_lists_the_contexts_that_exist(tmp_path: Path):
    kc = _kubeconfig(tmp_path / "kc", ["scalelab-test", "other"])
    with pytest.raises(PreflightError) as err:
        new_api_client(Target(str(kc), KIND_CONTEXT))
    assert "kind-scalelab" in err.value.message and "scalelab-test, other" in err.value.message
    assert Target(str(kc), None).describe() == f"context 'scalelab-test' in {kc}"
    api = new_api_client(Target(str(kc), "other"))
    assert api.configuration.host == "https://127.0.0.1:1"
