"""The Docker engine side of a density ramp: the image, the container spec, create/start/remove.

Talks to the engine's API directly (the ``docker`` SDK), so a start's latency is the engine's,
not a CLI process's. Every container and network carries ``scalelab.density=<run id>`` and the
PID of the ramp that made it, so a later ramp removes what a killed one left behind, and nothing
else. Containers are safe by default: non-root, read-only root filesystem, no capabilities,
memory, CPU and PID limits, no network at all in runtime mode, no log file.
"""

from __future__ import annotations

import os
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from scalelab import _run, versions
from scalelab.density import host
from scalelab.errors import PreflightError

__all__ = [
    "LABEL",
    "PID_LABEL",
    "DENSITY_IMAGE",
    "Started",
    "connect",
    "engine_kind",
    "ensure_image",
    "create_network",
    "container_spec",
    "create_and_start",
    "list_ours",
    "remove_containers",
    "remove_networks",
    "remove_leftovers",
    "owner_alive",
    "labels",
    "clean_stale",
    "wait_http_ready",
]

LABEL = "scalelab.density"
PID_LABEL = "scalelab.density.pid"
HOST_LABEL = "scalelab.density.host"
#: The kit's minimal container: `sleep` from the kit's Debian base, as nobody.
DENSITY_IMAGE = f"scalelab-density:{versions.KIT_VERSION}"
NOBODY = "65534:65534"
AGENT_PORT = 8000
LAB = "12-density"

Say = Callable[[str], None]


def connect(pool: int = 10) -> Any:
    """A docker SDK client with ``pool`` connections (starts run in parallel threads)."""
    from scalelab.engine import sdk_client

    return sdk_client(timeout_s=120, pool=max(2, pool + 2))


def engine_kind(client: Any) -> tuple[str, str]:
    """(``local`` | ``vm``, server version): ``vm`` when the daemon is Docker Desktop's."""
    info = client.api.info()
    desktop = "docker desktop" in str(info.get("OperatingSystem", "")).lower()
    return ("vm" if desktop else "local"), str(info.get("ServerVersion", ""))


# --- image --------------------------------------------------------------------------------------


def _density_dockerfile(base: str) -> bytes:
    return (
        f"FROM {base}\n"
        f'LABEL {LABEL}.image="1"\n'
        f"USER {NOBODY}\n"
        'CMD ["sleep", "infinity"]\n'
    ).encode()


def ensure_image(mode: str, client: Any, say: Say) -> str:
    """The image of ``mode``: the agent (workload) or the minimal `sleep` image, built once from a local base."""
    import docker.errors

    def present(tag: str) -> bool:
        try:
            client.images.get(tag)
        except docker.errors.ImageNotFound:
            return False
        return True

    if mode == "workload":
        if not present(versions.AGENT_IMAGE):
            raise PreflightError(f"image {versions.AGENT_IMAGE} is not built on this machine", fix="build it: `make image`", lab="00-prerequisites")
        return versions.AGENT_IMAGE
    if present(DENSITY_IMAGE):
        return DENSITY_IMAGE
    base = next((b for b in (versions.BASE_IMAGE, versions.ONLINE_PYTHON_BASE) if present(b)), None)
    if base is None:
        raise PreflightError(
            f"no local base image to build {DENSITY_IMAGE} from ({versions.BASE_IMAGE} or {versions.ONLINE_PYTHON_BASE})",
            fix="build the kit's images first: `make image` (offline path: no registry needed)",
            lab="00-prerequisites",
        )
    say(f"building {DENSITY_IMAGE} from {base} (metadata only, no registry)")
    _run.run(["docker", "build", "-q", "-t", DENSITY_IMAGE, "-"], input_bytes=_density_dockerfile(base), env={"DOCKER_BUILDKIT": "0"}, timeout_s=300)
    return DENSITY_IMAGE


# --- objects ------------------------------------------------------------------------------------


def labels(run_id: str) -> dict[str, str]:
    return {LABEL: run_id, PID_LABEL: str(os.getpid()), HOST_LABEL: socket.gethostname()}


def create_network(client: Any, run_id: str) -> tuple[str, str]:
    """One user-defined bridge for the run: (name, Linux bridge device ``br-<id>``)."""
    name = f"sl-density-{run_id[-4:]}-{run_id[:15]}"
    net = client.api.create_network(name, driver="bridge", labels=labels(run_id), check_duplicate=True)
    return name, f"br-{net['Id'][:12]}"


def container_spec(client: Any, mode: str, image: str, run_id: str, index: int, network: str | None) -> dict[str, Any]:
    """Keyword arguments for ``APIClient.create_container``: safe by default in every mode."""
    from docker.types import LogConfig

    workload = mode == "workload"
    host_config = client.api.create_host_config(
        network_mode=network or "none",
        mem_limit="256m" if workload else "16m",
        memswap_limit="256m" if workload else "16m",
        nano_cpus=500_000_000 if workload else 10_000_000,
        pids_limit=64 if workload else 16,
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
        read_only=True,
        tmpfs={"/tmp": "size=16m"} if workload else None,
        log_config=LogConfig(type="json-file" if workload else "none"),
    )
    spec: dict[str, Any] = {
        "image": image,
        "name": f"sl-density-{run_id[-4:]}-{index:04d}",
        "user": "65532:65532" if workload else NOBODY,
        "labels": labels(run_id),
        "host_config": host_config,
        "detach": True,
    }
    if workload:
        spec["environment"] = {"AGENT_WARMUP_S": "0"}
        spec["healthcheck"] = {"test": ["NONE"]}  # no exec every 10 s per container: readiness is probed from the host
    return spec


@dataclass(frozen=True)
class Started:
    container_id: str | None
    latency_s: float
    error: str | None
    done_at: float  # monotonic


def create_and_start(client: Any, spec: dict[str, Any]) -> Started:
    """Create and start one container; the error text is the engine's own, word for word."""
    import docker.errors
    import requests

    t0 = time.monotonic()
    cid = None
    try:
        cid = client.api.create_container(**spec)["Id"]
        client.api.start(cid)
    except docker.errors.APIError as exc:
        return Started(cid, time.monotonic() - t0, str(exc.explanation or exc), time.monotonic())
    except (requests.RequestException, OSError) as exc:
        return Started(cid, time.monotonic() - t0, f"{type(exc).__name__}: {exc}", time.monotonic())
    return Started(cid, time.monotonic() - t0, None, time.monotonic())


def container_ip(client: Any, cid: str, network: str) -> str | None:
    nets = client.api.inspect_container(cid)["NetworkSettings"]["Networks"]
    return (nets.get(network) or {}).get("IPAddress") or None


def wait_http_ready(urls: dict[str, str], timeout_s: float, t_start: dict[str, float]) -> dict[str, float]:
    """Poll each ``http://<container ip>:8000/readyz`` until 200; container -> seconds from its create."""
    ready: dict[str, float] = {}
    deadline = time.monotonic() + timeout_s
    while len(ready) < len(urls) and time.monotonic() < deadline:
        for cid, url in urls.items():
            if cid in ready:
                continue
            try:
                with urllib.request.urlopen(url, timeout=0.5) as resp:  # noqa: S310 - the run's own containers only
                    if resp.status == 200:
                        ready[cid] = time.monotonic() - t_start[cid]
            except (urllib.error.URLError, OSError):
                continue
        time.sleep(0.2)
    return ready


# --- listing and removing -----------------------------------------------------------------------


def list_ours(client: Any, run_id: str | None = None) -> list[dict[str, Any]]:
    """Containers (running or not) of one run, or of every density run."""
    selector = f"{LABEL}={run_id}" if run_id else LABEL
    return list(client.api.containers(all=True, filters={"label": selector}))


def remove_containers(client: Any, ids: list[str], parallel: int = 8) -> list[str]:
    """``docker rm -f`` each (in parallel); returns the error texts (none expected)."""
    from concurrent.futures import ThreadPoolExecutor

    import docker.errors

    def rm(cid: str) -> str | None:
        try:
            client.api.remove_container(cid, force=True, v=True)
        except docker.errors.NotFound:
            return None
        except docker.errors.APIError as exc:
            return f"{cid[:12]}: {exc.explanation or exc}"
        return None

    if not ids:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(ids)))) as pool:
        return [e for e in pool.map(rm, ids) if e]


def remove_networks(client: Any, run_id: str | None = None) -> list[str]:
    selector = f"{LABEL}={run_id}" if run_id else LABEL
    removed = []
    for net in client.api.networks(filters={"label": selector}):
        client.api.remove_network(net["Id"])
        removed.append(net["Name"])
    return removed


def owner_alive(labels_: dict[str, str]) -> bool:
    """Whether the ramp that made an object still runs on this host."""
    if labels_.get(HOST_LABEL) != socket.gethostname():
        return True  # another machine's engine user: not ours to judge
    try:
        pid = int(labels_.get(PID_LABEL, "0"))
    except ValueError:
        return False
    return pid > 0 and (host.PROC / str(pid)).is_dir()


def remove_leftovers(client: Any, say: Say, *, include_live: bool = False) -> tuple[int, list[str]]:
    """Remove containers and networks of density ramps that no longer run (or of all, ``include_live``)."""
    stale = [c for c in list_ours(client) if include_live or not owner_alive(c.get("Labels") or {})]
    runs = {(c.get("Labels") or {}).get(LABEL, "") for c in stale}
    errors = remove_containers(client, [c["Id"] for c in stale])
    for net in client.api.networks(filters={"label": LABEL}):
        if include_live or not owner_alive(net.get("Labels") or {}) or net.get("Labels", {}).get(LABEL) in runs:
            client.api.remove_network(net["Id"])
            runs.add(net.get("Labels", {}).get(LABEL, ""))
    if stale:
        say(f"removed {len(stale)} container(s) left by earlier density run(s): {', '.join(sorted(r for r in runs if r))}")
    return len(stale), errors


def clean_stale(say: Say) -> Any:
    """`scalelab clean`'s density step: containers and networks of ramps that no longer run."""
    from scalelab.cleanup import Step
    from scalelab.engine import reachable

    if not reachable(timeout_s=20):
        return Step("density", skipped="Docker engine not reachable: no density containers to remove")
    client = connect()
    runs = sorted({(c.get("Labels") or {}).get(LABEL, "") for c in list_ours(client) if not owner_alive(c.get("Labels") or {})})
    remove_leftovers(client, say)
    return Step("density", tuple(r for r in runs if r))
