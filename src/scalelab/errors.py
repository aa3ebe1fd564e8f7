"""The one exception tree of scalelab.

Every error says what failed, how to fix it, and which lab to read. The CLI prints
``ERROR: <message>`` plus the fix on stderr and exits 1; tracebacks only with ``-v``.
"""

from __future__ import annotations

__all__ = [
    "ScalelabError",
    "ScenarioError",
    "CommandError",
    "PreflightError",
    "PlatformError",
    "RunFormatError",
]


class ScalelabError(Exception):
    """Base class: a message, a one-line fix and the lab that explains it."""

    def __init__(self, message: str, *, fix: str = "", lab: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix
        self.lab = lab

    def render(self) -> str:
        lines = [self.message]
        if self.fix:
            lines.append(f"fix: {self.fix}")
        if self.lab:
            lines.append(f"see: labs/{self.lab}.md")
        return "\n".join(lines)


class ScenarioError(ScalelabError):
    """A scenario file is missing or invalid (names the file, the field and allowed values)."""


class PreflightError(ScalelabError):
    """Something a run needs is missing or busy (tool, engine, port, cluster), found before starting."""


class CommandError(ScalelabError):
    """An external command failed; carries the exact pasteable command and its output."""

    def __init__(
        self,
        argv: list[str],
        returncode: int,
        stdout: str,
        stderr: str,
        *,
        fix: str = "",
        lab: str = "",
    ) -> None:
        import shlex

        self.argv = list(argv)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        tail = (stderr or stdout or "").strip().splitlines()[-8:]
        detail = "\n  ".join(tail)
        message = f"command failed (exit {returncode}): {shlex.join(self.argv)}"
        if detail:
            message += f"\n  {detail}"
        super().__init__(message, fix=fix, lab=lab)


class PlatformError(ScalelabError):
    """A platform (compose, kubernetes, kind) misbehaved during a run."""


class RunFormatError(ScalelabError):
    """A run directory is missing files or does not match the schema."""
