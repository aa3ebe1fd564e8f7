"""The kind node image: the published one (pinned by digest) or the one built here without a
registry (``make kind-node-image``, k8s/node-image/build.sh).

Choice, when ``scalelab cluster up`` gets no ``--image``: the published image if Docker already
has it (kind would not pull), else the locally built ``scalelab-kind-node:<Kubernetes version>``
if it exists, else the published image (kind pulls it; needs a registry). Also finds the kind
binary the kit builds from the Go module proxy when none is on PATH.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from scalelab import _run
from scalelab.images import cache_dir
from scalelab.versions import LOCAL_KIND_NODE_IMAGE, VERSIONS

__all__ = ["LOCAL_KIND_NODE_IMAGE", "choose_node_image", "ensure_kind_on_path", "kit_kind_dirs", "local_image_present"]

Say = Callable[[str], None]


def local_image_present(ref: str) -> bool:
    """True when Docker has `ref` (a tag, or name@digest) locally: kind will not pull it."""
    proc = _run.run(["docker", "image", "inspect", "--format", "{{.Id}}", ref], check=False, timeout_s=30)
    return proc.returncode == 0


def choose_node_image(explicit: str | None, present: Callable[[str], bool] = local_image_present) -> str:
    """The node image for `kind create cluster --image` (see the module docstring)."""
    if explicit:
        return explicit
    published = VERSIONS["kind_node_image"]
    if present(published):
        return published
    if present(LOCAL_KIND_NODE_IMAGE):
        return LOCAL_KIND_NODE_IMAGE
    return published


def kit_kind_dirs(cache: Path | None = None) -> list[Path]:
    """Where tests/cluster/build.sh (part "node") puts the kind it builds: kind/bin-<go version>/."""
    root = (cache or cache_dir()) / "kind"
    return sorted((p for p in root.glob("bin-go*") if (p / "kind").is_file()), reverse=True)


def ensure_kind_on_path(say: Say = print, cache: Path | None = None) -> None:
    """When `kind` is not on PATH but the kit built one, put that one on PATH for this process."""
    if shutil.which("kind"):
        return
    dirs = kit_kind_dirs(cache)
    if dirs:
        os.environ["PATH"] = f"{dirs[0]}{os.pathsep}{os.environ.get('PATH', '')}"
        say(f"using the kind built by the kit: {dirs[0] / 'kind'}")
