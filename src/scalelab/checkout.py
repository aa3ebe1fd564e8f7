"""Where the kit's shipped files live: the scalelab checkout (Dockerfile, compose/, k8s/, loadgen/).

Every file the kit reads from its checkout is found here, one way: an environment variable
naming it wins; otherwise the checkout is searched from the current directory, then from this
package's own location (an editable install inside the clone).
"""

from __future__ import annotations

import os
from pathlib import Path

from scalelab.errors import PreflightError

__all__ = ["find_repo_root", "kit_path"]


def find_repo_root(start: Path | None = None) -> Path:
    """The checkout holding the Dockerfile and src/scalelab (searched from cwd, then this file)."""
    candidates = [start or Path.cwd(), Path(__file__).resolve().parent]
    for origin in candidates:
        for path in (origin, *origin.parents):
            if (path / "Dockerfile").is_file() and (path / "src" / "scalelab").is_dir():
                return path
    raise PreflightError(
        "cannot find the scalelab checkout (a directory with Dockerfile and src/scalelab)",
        fix="run scalelab from the root of your scalelab clone",
        lab="00-prerequisites",
    )


def kit_path(relative: str, env_var: str, *, must_contain: str | None = None, explicit: str | os.PathLike[str] | None = None, lab: str = "") -> Path:
    """A shipped file or folder: ``explicit``, else ``$env_var``, else ``<checkout>/relative``.

    ``must_contain`` names a file that a folder must hold to count (e.g. ``compose.yaml``).
    """
    given = explicit or os.environ.get(env_var)
    path = Path(given) if given else find_repo_root() / relative
    probe = path / must_contain if must_contain else path
    if not probe.exists():
        raise PreflightError(
            f"{probe} is missing",
            fix=f"run scalelab from the scalelab checkout, or set {env_var} to the kit's {relative}",
            lab=lab,
        )
    return path.resolve()
