"""Kubernetes rollouts: a new image in the Deployment's pod template, and the controller does the rest.

The strategy (``RollingUpdate`` with maxSurge/maxUnavailable, or ``Recreate``), the readiness
probe, the preStop sleep and the grace period are in the Deployment from the start
(`scalelab.platforms.k8s_manifests.apply_rollout_settings`): the pods that stop during a rollout
are the old ones. The hook only patches the image and follows the Deployment's status until the
rollout is complete the way ``kubectl rollout status`` decides it: the controller has seen the
change, every replica is updated and available, and no old replica is left.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from scalelab.errors import PlatformError
from scalelab.platforms.k8s_client import raw
from scalelab.rollout.act import Emit
from scalelab.scenario import ArmRollout

__all__ = ["KubernetesRoller", "rollout_progress"]

POLL_S = 0.25
DEPLOYMENT = "ai-agent"


def rollout_progress(dep: dict[str, Any]) -> tuple[bool, str]:
    """(complete, one line) from a Deployment's spec and status, as ``kubectl rollout status`` reads them."""
    spec, status = dep.get("spec") or {}, dep.get("status") or {}
    want = int(spec.get("replicas") or 0)
    generation = int((dep.get("metadata") or {}).get("generation") or 0)
    seen = int(status.get("observedGeneration") or 0)
    updated, total = int(status.get("updatedReplicas") or 0), int(status.get("replicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    if seen < generation:
        return False, "waiting for the Deployment controller to see the new pod template"
    line = f"updated {updated}/{want}, available {available}, old {max(0, total - updated)}"
    return updated == want and total == want and available == want, line


class KubernetesRoller:
    def __init__(self, platform: Any) -> None:
        self.platform = platform

    def preflight(self, image: str) -> None:
        from kubernetes import client

        nodes = raw(client.CoreV1Api(self.platform.api).list_node).get("items") or []
        self.platform.check_image_on_nodes(nodes, image)

    def roll(self, image: str, how: ArmRollout, emit: Emit, stop: threading.Event, timeout_s: float) -> str:
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        apps, core = client.AppsV1Api(self.platform.api), client.CoreV1Api(self.platform.api)
        ns = self.platform.namespace
        patch = {"spec": {"template": {"spec": {"containers": [{"name": "ai-agent", "image": image}]}}}}
        try:
            apps.patch_namespaced_deployment(DEPLOYMENT, ns, patch, field_manager="scalelab", _content_type="application/strategic-merge-patch+json",
                                             _request_timeout=10)
        except ApiException as exc:
            raise PlatformError(f"cannot set the image of deployment {ns}/{DEPLOYMENT}: {exc.status} {exc.reason}", fix=f"kubectl -n {ns} describe deploy") from None
        emit("rollout", f"deployment image set to {image} ({how.strategy})")
        deadline = time.monotonic() + timeout_s
        last = ""
        while True:
            try:
                dep = raw(apps.read_namespaced_deployment, DEPLOYMENT, ns, timeout_s=2.0)
            except Exception as exc:  # noqa: BLE001 - one missed read; the deadline bounds the wait
                emit("note", f"deployment read failed: {exc!s:.200}")
                dep = None
            if dep is not None:
                done, line = rollout_progress(dep)
                if line != last:
                    emit("rollout", line)
                    last = line
                if done:
                    break
            if stop.is_set() or time.monotonic() > deadline:
                raise PlatformError(f"rollout of {ns}/{DEPLOYMENT} not complete after {timeout_s:.0f} s ({last})", fix=f"kubectl -n {ns} rollout status deploy/{DEPLOYMENT}")
            time.sleep(POLL_S)
        pods = raw(core.list_namespaced_pod, ns, label_selector="app.kubernetes.io/name=ai-agent", timeout_s=5.0).get("items") or []
        images = [c.get("image") for p in pods if not (p.get("metadata") or {}).get("deletionTimestamp") for c in (p.get("spec") or {}).get("containers") or []]
        on_new = sum(1 for i in images if i == image)
        return f"replicas={on_new} on {image}, {len(images) - on_new} on other images"
