"""The agent's settings, read once from the environment and frozen."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["AgentConfig", "DEFAULT_VERSION"]

#: What a replica reports as its version when ``AGENT_VERSION`` is unset (the v2 image sets it).
DEFAULT_VERSION = "v1"
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")


@dataclass(frozen=True)
class AgentConfig:
    """``AGENT_WORK_MS`` CPU per chat, ``AGENT_WARMUP_S`` cold start, where to listen, workers,
    ``AGENT_VERSION`` the version every reply carries (rollouts: which version answered)."""

    work_ms: float = 50.0
    warmup_s: float = 2.0
    host: str = "127.0.0.1"
    port: int = 8000
    #: Threads doing the work. One is right under the GIL: requests queue FIFO and each is
    #: served at full speed (M/D/1), instead of all slowing down together.
    threads: int = 1
    #: Seconds uvicorn waits for in-flight requests after SIGTERM (the platform's grace period
    #: usually ends it first: compose 10 s, Kubernetes 30 s).
    grace_s: float = 30.0
    #: ``AGENT_DRAIN``: on SIGTERM, stop accepting and finish what is in flight (true, the default),
    #: or exit at once like a program that does not handle the signal (false: the rollout ladder's
    #: first rung, docs/rollouts.md). In-flight requests are then cut.
    drain: bool = True
    max_body_bytes: int = 64 * 1024
    version: str = DEFAULT_VERSION

    def __post_init__(self) -> None:
        if not 0 <= self.work_ms <= 60_000:
            raise ValueError(f"AGENT_WORK_MS must be between 0 and 60000, got {self.work_ms}")
        if not 0 <= self.warmup_s <= 3600:
            raise ValueError(f"AGENT_WARMUP_S must be between 0 and 3600, got {self.warmup_s}")
        if not 0 < self.port < 65536:
            raise ValueError(f"AGENT_PORT must be a TCP port (1-65535), got {self.port}")
        if not 1 <= self.threads <= 64:
            raise ValueError(f"AGENT_THREADS must be between 1 and 64, got {self.threads}")
        if not _VERSION.match(self.version):
            raise ValueError(f"AGENT_VERSION must be 1-32 letters, digits, '.', '_' or '-', got {self.version!r}")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AgentConfig:
        env = os.environ if env is None else env

        def num(name: str, default: float, kind: type = float) -> float:
            raw = env.get(name, "").strip()
            if not raw:
                return default
            try:
                return kind(raw)
            except ValueError:
                raise ValueError(f"{name} must be a {kind.__name__}, got {raw!r}") from None

        return cls(
            work_ms=num("AGENT_WORK_MS", cls.work_ms),
            warmup_s=num("AGENT_WARMUP_S", cls.warmup_s),
            host=env.get("AGENT_HOST", "").strip() or cls.host,
            port=int(num("AGENT_PORT", cls.port, int)),
            threads=int(num("AGENT_THREADS", cls.threads, int)),
            grace_s=num("AGENT_GRACE_S", cls.grace_s),
            version=env.get("AGENT_VERSION", "").strip() or cls.version,
            drain=_flag(env.get("AGENT_DRAIN", ""), "AGENT_DRAIN", cls.drain),
        )


def _flag(raw: str, name: str, default: bool) -> bool:
    value = raw.strip().lower()
    if not value:
        return default
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be 1 or 0 (true or false), got {raw!r}")
