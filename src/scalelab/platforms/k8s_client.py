"""Which cluster to talk to, and one API client for it (built lazily, never at import).

Default: the kind cluster of lab 03 (context ``kind-scalelab``). Any other cluster: pass
``--kubeconfig`` and/or ``--context``, or set ``KUBECONFIG`` (its current context is used).
Errors name the file, the context and the contexts that exist.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scalelab.errors import PreflightError

__all__ = ["KIND_CLUSTER", "KIND_CONTEXT", "Target", "resolve_target", "new_api_client", "check_reachable", "raw"]

LAB = "03-kind-cluster-and-hpa"
KIND_CLUSTER = "scalelab"
KIND_CONTEXT = f"kind-{KIND_CLUSTER}"


@dataclass(frozen=True)
class Target:
    """A kubeconfig file and a context in it (None = the file's current context)."""

    kubeconfig: str
    context: str | None

    @property
    def kind_cluster(self) -> str | None:
        """The kind cluster name when the context is one kind wrote (``kind-<name>``)."""
        if self.context and self.context.startswith("kind-"):
            return self.context[len("kind-") :]
        return None

    def describe(self) -> str:
        return f"context '{self.context or _current_context(self.kubeconfig)}' in {self.kubeconfig}"


def _current_context(path: str) -> str:
    """The file's current-context, for messages ("(current)" when unreadable)."""
    try:
        import yaml

        return str(yaml.safe_load(Path(path).read_text(encoding="utf-8")).get("current-context") or "(current)")
    except Exception:  # noqa: BLE001 - a message helper must not fail
        return "(current)"


def resolve_target(kubeconfig: str | os.PathLike[str] | None = None, context: str | None = None, environ: Mapping[str, str] | None = None) -> Target:
    """``--kubeconfig``/``--context``/``$KUBECONFIG`` → a Target; nothing given → kind's context."""
    env = os.environ if environ is None else environ
    from_env = (env.get("KUBECONFIG") or "").split(os.pathsep)[0]
    path = os.fspath(kubeconfig) if kubeconfig else (from_env or str(Path(env.get("HOME", "~")) / ".kube" / "config"))
    path = os.path.expanduser(path)
    if context is None and not kubeconfig and not from_env:
        context = KIND_CONTEXT
    return Target(kubeconfig=path, context=context)


def _fix_for(target: Target) -> str:
    if target.context == KIND_CONTEXT or target.kind_cluster:
        return "create the kind cluster: `scalelab cluster up` (make lab03-cluster)"
    return "pass --kubeconfig FILE and --context NAME of a running cluster (CI: tests/cluster/cluster.sh up)"


def new_api_client(target: Target) -> Any:
    """A `kubernetes.client.ApiClient` for the target; PreflightError when file or context is wrong."""
    from kubernetes import config
    from kubernetes.config.config_exception import ConfigException

    if not Path(target.kubeconfig).is_file():
        raise PreflightError(f"no kubeconfig at {target.kubeconfig}", fix=_fix_for(target), lab=LAB)
    try:
        contexts, current = config.list_kube_config_contexts(config_file=target.kubeconfig)
    except ConfigException as exc:
        raise PreflightError(f"{target.kubeconfig} is not a usable kubeconfig: {exc}", fix=_fix_for(target), lab=LAB) from None
    names = [c["name"] for c in contexts or []]
    if target.context is not None and target.context not in names:
        raise PreflightError(
            f"context '{target.context}' is not in {target.kubeconfig} (contexts there: {', '.join(names) or 'none'})",
            fix=f"pass --context with one of them, or {_fix_for(target)}",
            lab=LAB,
        )
    try:
        return config.new_client_from_config(config_file=target.kubeconfig, context=target.context, persist_config=False)
    except ConfigException as exc:
        raise PreflightError(f"cannot use {target.describe()}: {exc}", fix=_fix_for(target), lab=LAB) from None


def check_reachable(api: Any, target: Target, *, timeout_s: float = 5.0) -> str:
    """The server's gitVersion; PreflightError "cluster not running" when the API server does not answer."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    try:
        info = raw(client.VersionApi(api).get_code, timeout_s=timeout_s)
    except ApiException as exc:
        if exc.status in (401, 403):
            raise PreflightError(
                f"the API server of {target.describe()} refused our credentials ({exc.status} {exc.reason})",
                fix="use a kubeconfig with cluster-admin rights (kind: `kind export kubeconfig --name scalelab`)",
                lab=LAB,
            ) from None
        raise PreflightError(f"the API server of {target.describe()} answered {exc.status} {exc.reason}", fix=_fix_for(target), lab=LAB) from None
    except Exception as exc:  # noqa: BLE001 - urllib3 connection errors, TLS errors, timeouts
        host = getattr(getattr(api, "configuration", None), "host", "?")
        raise PreflightError(
            f"cluster not running: cannot reach the API server {host} of {target.describe()} ({type(exc).__name__})",
            fix=_fix_for(target),
            lab=LAB,
        ) from None
    return str(info.get("gitVersion", "?"))


def raw(method: Callable[..., Any], *args: Any, timeout_s: float = 5.0, **kwargs: Any) -> Any:
    """Call a typed API method and return the JSON as plain dicts (or text for non-JSON bodies)."""
    resp = method(*args, _preload_content=False, _request_timeout=timeout_s, **kwargs)
    data = resp.data.decode("utf-8", errors="replace") if isinstance(resp.data, bytes) else resp.data
    try:
        return json.loads(data)
    except (TypeError, ValueError):
        return data
