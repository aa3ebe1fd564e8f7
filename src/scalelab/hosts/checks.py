"""`scalelab doctor`: what a scenario's ``hosts:`` needs on this machine (never changes anything)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

__all__ = ["hosts_check"]


def hosts_check() -> Any:
    """One optional check: the host image (present, or what building it needs), the cgroup version, the cores.

    A host is a container running its own Docker daemon, not --privileged: every capability but
    CAP_SYS_RESOURCE, the cgroup tree writable, a volume for its images (docs/hosts.md).
    """
    from scalelab.doctor import Check
    from scalelab.engine import image_exists
    from scalelab.hosts.dind import HOST_IMAGE

    cores = os.cpu_count() or 1
    v2 = Path("/sys/fs/cgroup/cgroup.controllers").exists()
    cgroup = "cgroup v2 (not checked by the kit yet: hosts run with --cgroupns private)" if v2 else "cgroup v1"
    if image_exists(HOST_IMAGE):
        ok, how = True, f"host image {HOST_IMAGE} present"
        fix = ""
    else:
        can_build = os.geteuid() == 0 and shutil.which("debootstrap") is not None
        ok = can_build
        how = f"host image not built yet; {'built on first use (debootstrap, about a minute)' if can_build else 'cannot build it here'}"
        fix = "offline: run as root with debootstrap installed (`sudo apt-get install -y debootstrap`); online: the kit builds it from debian:bookworm-slim"
    return Check(
        "hosts",
        "multi-host scenarios (hosts:): Docker-in-Docker hosts",
        ok,
        f"{how}; {cgroup}; {cores} CPUs: each host may have at most {cores}, and caps that add up to more are shared, not guaranteed",
        fix,
        required=False,
    )
