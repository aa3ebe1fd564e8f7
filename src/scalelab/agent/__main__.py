"""``python -m scalelab.agent``: serve the agent with uvicorn (SIGTERM drains in-flight requests)."""

from __future__ import annotations

import os
import sys

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
    uvicorn.run(
        create_app(config),
        host=config.host,
        port=config.port,
        lifespan="on",
        log_level=os.environ.get("AGENT_LOG_LEVEL", "warning"),
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=max(1, round(config.grace_s)),
    )


if __name__ == "__main__":
    main()
