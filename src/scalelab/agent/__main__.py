"""``python -m scalelab.agent``: serve the agent with uvicorn (SIGTERM drains in-flight requests,
unless ``AGENT_DRAIN=0``: then the process exits on SIGTERM at once, like one that does not handle it)."""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType
from typing import Any

from scalelab.agent.app import create_app
from scalelab.agent.config import AgentConfig


def main() -> None:
    try:
        config = AgentConfig.from_env()
    except ValueError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        sys.exit(2)
    import uvicorn

    print(
        f"scalelab ai-agent on {config.host}:{config.port} work_ms={config.work_ms:g} "
        f"warmup_s={config.warmup_s:g} threads={config.threads} version={config.version}",
        file=sys.stderr,
        flush=True,
    )
    server_config = uvicorn.Config(
        create_app(config),
        host=config.host,
        port=config.port,
        lifespan="on",
        log_level=os.environ.get("AGENT_LOG_LEVEL", "warning"),
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=max(1, round(config.grace_s)),
    )
    server_class = uvicorn.Server if config.drain else no_drain(uvicorn.Server)
    server_class(server_config).run()


def no_drain(base: type[Any]) -> type[Any]:
    """``base`` (uvicorn's Server) with SIGTERM ending the process at once (exit status 143, as the
    signal's default action would): no more accepting, nothing in flight finished. SIGINT is unchanged."""

    class NoDrain(base):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            if sig == signal.SIGTERM:
                print("scalelab ai-agent: SIGTERM with AGENT_DRAIN=0: exiting now, in-flight requests are cut", file=sys.stderr, flush=True)
                os._exit(128 + signal.SIGTERM)
            super().handle_exit(sig, frame)

    return NoDrain


if __name__ == "__main__":
    main()
