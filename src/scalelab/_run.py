"""The one way out to the operating system: every external command goes through `run`."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from scalelab.errors import CommandError

__all__ = ["run", "debug_enabled"]


def debug_enabled() -> bool:
    return os.environ.get("SCALELAB_DEBUG", "") not in ("", "0", "false")


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    check: bool = True,
    capture: bool = True,
    timeout_s: float | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    input_bytes: bytes | None = None,
    fix: str = "",
) -> subprocess.CompletedProcess[str]:
    """Run a command; on failure raise CommandError carrying the pasteable command and its output.

    ``SCALELAB_DEBUG=1`` echoes each command to stderr before it runs.
    """
    args = [os.fspath(a) for a in argv]
    if debug_enabled():
        print(f"+ {shlex.join(args)}", file=sys.stderr)
    full_env = None if env is None else {**os.environ, **env}
    try:
        proc = subprocess.run(
            args,
            capture_output=capture,
            text=input_bytes is None,
            input=input_bytes,
            timeout=timeout_s,
            env=full_env,
            cwd=Path(cwd) if cwd else None,
            check=False,
        )
    except FileNotFoundError as exc:
        raise CommandError(args, 127, "", str(exc), fix=fix or f"install `{args[0]}` (see `scalelab doctor`)") from exc
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        raise CommandError(args, -1, out, f"timed out after {timeout_s} s\n{err}", fix=fix) from exc
    if isinstance(proc.stdout, bytes):
        proc = subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace"))
    if check and proc.returncode != 0:
        raise CommandError(args, proc.returncode, proc.stdout or "", proc.stderr or "", fix=fix)
    return proc
