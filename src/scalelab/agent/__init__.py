"""The ai-agent workload: a small ASGI service whose every chat costs a fixed amount of CPU.

Run it with ``python -m scalelab.agent`` (uvicorn; ``AGENT_HOST``/``AGENT_PORT``, default
127.0.0.1:8000; the image sets 0.0.0.0). Endpoints: ``POST /chat``, ``GET /healthz``,
``GET /readyz`` (503 during the ``AGENT_WARMUP_S`` cold start), ``GET /metrics`` (Prometheus).
Only the standard library and uvicorn are needed, so the image stays small.
"""

from scalelab.agent.app import AgentApp, create_app
from scalelab.agent.config import AgentConfig
from scalelab.agent.work import WorkResult, burn_cpu, do_work, reply_text

__all__ = ["AgentApp", "AgentConfig", "WorkResult", "burn_cpu", "create_app", "do_work", "reply_text"]
