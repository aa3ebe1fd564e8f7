"""The engine's swarm as the kit sees it: its state, whether the kit created it, init and leave.

`scalelab.platforms.swarm` uses these; the ownership record (``swarm-owner.json`` under the kit's
cache) is what lets `scalelab clean` leave a swarm the kit did not create.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scalelab import _run
from scalelab.errors import PreflightError
from scalelab.platforms.base import Say

PLATFORM_LABEL = "scalelab.platform=swarm"
STACK_LABEL = "com.docker.stack.namespace"
OWNER_FILE = "swarm-owner.json"
GWBRIDGE = "docker_gwbridge"
DOWN_FIX = "`scalelab down swarm` removes what the kit started"
LAB = "08-swarm"


def state_root() -> Path:
    from scalelab.images import cache_dir

    return cache_dir() / "swarm"


def _docker(*args: str, fix: str = DOWN_FIX, timeout_s: float = 120.0, check: bool = True) -> str:
    return _run.run(["docker", *args], timeout_s=timeout_s, fix=fix, check=check).stdout


def swarm_state(sdk: Any) -> dict[str, Any]:
    """``docker info``'s Swarm section (LocalNodeState, NodeID, ControlAvailable, ...)."""
    info: dict[str, Any] = sdk.info().get("Swarm") or {}
    return info


def _owner(root: Path | None = None) -> dict[str, Any] | None:
    path = (root or state_root()) / OWNER_FILE
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return data
    except (OSError, ValueError):
        return None


def kit_owns_swarm(sdk: Any, root: Path | None = None) -> bool:
    """True when the engine's swarm is the one the kit initialised (recorded node id matches)."""
    owner, sw = _owner(root), swarm_state(sdk)
    return bool(owner and sw.get("LocalNodeState") == "active" and owner.get("node_id") == sw.get("NodeID"))


def check_swarm_usable(sdk: Any, root: Path | None = None) -> None:
    """PreflightError when the engine is in a swarm the kit did not create, or is no manager."""
    sw = swarm_state(sdk)
    state = sw.get("LocalNodeState", "inactive")
    if state == "inactive":
        return
    if state != "active":
        raise PreflightError(
            f"this Docker engine's swarm state is '{state}' {sw.get('Error') or ''}".strip(),
            fix="settle it yourself first (`docker info` shows the swarm state); scalelab only uses a swarm it created",
            lab=LAB,
        )
    if not sw.get("ControlAvailable"):
        raise PreflightError(
            f"this Docker engine is a swarm worker (node {sw.get('NodeID')}), not a manager: it cannot deploy stacks",
            fix="run scalelab against a manager (DOCKER_HOST), or leave that swarm yourself (`docker swarm leave`) so the kit can make its own",
            lab=LAB,
        )
    if not kit_owns_swarm(sdk, root):
        raise PreflightError(
            f"this Docker engine is already in a swarm the kit did not create (node {sw.get('NodeID')}); "
            "scalelab will not deploy into it nor change it",
            fix="use another engine (DOCKER_HOST), or, if that swarm is a throwaway test swarm, leave it yourself: `docker swarm leave --force`",
            lab=LAB,
        )


def _network_exists(sdk: Any, name: str) -> bool:
    return any(n.get("Name") == name for n in sdk.api.networks(names=[name]))


def ensure_swarm(sdk: Any, say: Say | None = None, *, advertise_addr: str = "127.0.0.1") -> None:
    """``docker swarm init --advertise-addr ADDR`` when the engine is in no swarm; records that the kit made it.

    ``advertise_addr``: 127.0.0.1 for a single node; with hosts, the engine's address on the kit's
    Docker network, which the manager also listens on (nowhere else). An existing kit swarm that
    advertises another address cannot take hosts: PreflightError.
    """
    check_swarm_usable(sdk)
    sw = swarm_state(sdk)
    if sw.get("LocalNodeState") == "active":
        if advertise_addr != "127.0.0.1" and sw.get("NodeAddr") != advertise_addr:
            raise PreflightError(
                f"the kit's swarm on this engine advertises {sw.get('NodeAddr')}, and hosts can only join a manager at {advertise_addr}",
                fix="`scalelab down swarm` (it stops the other kit stacks and leaves the swarm), then run again", lab=LAB,
            )
        return
    gw_existed = _network_exists(sdk, GWBRIDGE)
    listen = [] if advertise_addr == "127.0.0.1" else ["--listen-addr", f"{advertise_addr}:2377"]
    _docker("swarm", "init", "--advertise-addr", advertise_addr, *listen, fix="read the message above; `docker info` shows the swarm state")
    root = state_root()
    root.mkdir(parents=True, exist_ok=True)
    owner = {"node_id": swarm_state(sdk).get("NodeID"), "created_utc": datetime.now(UTC).isoformat(), "gwbridge_existed": gw_existed}
    (root / OWNER_FILE).write_text(json.dumps(owner, indent=2) + "\n", encoding="utf-8")
    if say:
        say(f"swarm initialised by scalelab (node {owner['node_id']}); `scalelab down swarm` leaves it")


def leave_swarm_if_ours(sdk: Any, say: Say | None = None) -> bool:
    """Leave the swarm when the kit created it and no kit stack is left; returns True when it left."""
    owner = _owner()
    if owner is None:
        return False
    if not kit_owns_swarm(sdk):  # left by hand, or another swarm since: the record is stale
        (state_root() / OWNER_FILE).unlink(missing_ok=True)
        return False
    if running_stacks(sdk):
        return False
    _docker("swarm", "leave", "--force", fix="`docker swarm leave --force` by hand")
    if not owner.get("gwbridge_existed") and _network_exists(sdk, GWBRIDGE):
        _docker("network", "rm", GWBRIDGE, check=False)
    (state_root() / OWNER_FILE).unlink(missing_ok=True)
    if say:
        say("left the swarm scalelab had created")
    return True


def running_stacks(sdk: Any) -> list[str]:
    """Stacks the kit deployed that have a service, a front-door container or a network now."""
    names: set[str] = set()
    if swarm_state(sdk).get("ControlAvailable"):
        names |= {s["Spec"].get("Labels", {}).get(STACK_LABEL, "") for s in sdk.api.services(filters={"label": PLATFORM_LABEL})}
    names |= {c["Labels"].get("scalelab.stack", "") for c in sdk.api.containers(all=True, filters={"label": [PLATFORM_LABEL, "scalelab.role=lb"]})}
    names |= {n["Labels"].get(STACK_LABEL, "") for n in sdk.api.networks(filters={"label": PLATFORM_LABEL}) if n.get("Labels")}
    return sorted(n for n in names if n)


