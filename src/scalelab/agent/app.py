"""The agent as a plain ASGI application (no web framework: less overhead, smaller image).

The CPU work runs in a small thread pool (`AgentConfig.threads`, default 1) so the event loop
keeps answering ``/healthz`` and ``/metrics`` under load, and ``agent_inflight_requests``
counts every chat received and not yet answered, queued or working.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from scalelab.agent.config import AgentConfig
from scalelab.agent.metrics import CONTENT_TYPE, Metrics
from scalelab.agent.work import do_work
from scalelab.versions import KIT_VERSION

__all__ = ["AgentApp", "create_app"]

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
KNOWN_PATHS = ("/chat", "/healthz", "/readyz", "/metrics", "/")


class _BadRequest(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class AgentApp:
    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.hostname = socket.gethostname()
        self.metrics = Metrics(hostname=self.hostname, work_ms=config.work_ms, version=KIT_VERSION)
        self.started = time.monotonic()
        self._pool: ThreadPoolExecutor | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    @property
    def pool(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.config.threads, thread_name_prefix="agent-work")
        return self._pool

    def is_ready(self) -> bool:
        ready = time.monotonic() - self.started >= self.config.warmup_s
        self.metrics.ready = int(ready)
        return ready

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.started = time.monotonic()
                _ = self.pool
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._pool is not None:
                    self._pool.shutdown(wait=True)
                await send({"type": "lifespan.shutdown.complete"})
                return

    # --- ASGI --------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        start = time.perf_counter()
        method, path = scope["method"], scope["path"]
        try:
            status, body, content_type = await self._route(method, path, receive)
        except _BadRequest as exc:
            status, body, content_type = exc.status, _json({"error": exc.detail}), "application/json"
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})
        label = path if path in KNOWN_PATHS else "other"
        self.metrics.observe(method, label, status, time.perf_counter() - start)

    async def _route(self, method: str, path: str, receive: Receive) -> tuple[int, bytes, str]:
        if path == "/chat":
            _allow(method, "POST")
            return await self._chat(receive)
        if path == "/healthz":
            _allow(method, "GET", "HEAD")
            return 200, _json({"status": "ok"}), "application/json"
        if path == "/readyz":
            _allow(method, "GET", "HEAD")
            if self.is_ready():
                return 200, _json({"ready": True}), "application/json"
            left = self.config.warmup_s - (time.monotonic() - self.started)
            return 503, _json({"ready": False, "warming_up_s": round(left, 3)}), "application/json"
        if path == "/metrics":
            _allow(method, "GET")
            self.is_ready()
            return 200, self.metrics.render().encode(), CONTENT_TYPE
        if path == "/":
            _allow(method, "GET", "HEAD")
            info = {"service": "scalelab ai-agent", "hostname": self.hostname, "version": self.config.version, "work_ms": self.config.work_ms}
            return 200, _json(info), "application/json"
        raise _BadRequest(404, f"no route {path}; try POST /chat, GET /healthz, /readyz, /metrics")

    async def _chat(self, receive: Receive) -> tuple[int, bytes, str]:
        self.metrics.inflight += 1
        try:
            message = _parse_message(await _read_body(receive, self.config.max_body_bytes))
            loop = asyncio.get_running_loop()
            gone = threading.Event()
            watcher = asyncio.ensure_future(_watch_disconnect(receive, gone))
            try:
                result = await loop.run_in_executor(self.pool, do_work, message, self.config.work_ms, gone.is_set)
            finally:
                watcher.cancel()
            self.metrics.work_cpu_s += result.cpu_ms / 1000
            if result.abandoned:
                self.metrics.abandoned += 1
                raise _BadRequest(499, "client disconnected; work abandoned")
            body = {"reply": result.reply, "hostname": self.hostname, "version": self.config.version, "work_ms": self.config.work_ms,
                    "cpu_ms": round(result.cpu_ms, 3)}
            return 200, _json(body), "application/json"
        finally:
            self.metrics.inflight -= 1


async def _watch_disconnect(receive: Receive, gone: threading.Event) -> None:
    """Set ``gone`` when the client closes the connection before its answer is ready.

    Once the body is read, an ASGI server's ``receive`` blocks until the client disconnects; a
    server that answers anything else cannot tell us, so watching stops there.
    """
    event = await receive()
    if event["type"] == "http.disconnect":
        gone.set()


def _allow(method: str, *allowed: str) -> None:
    if method not in allowed:
        raise _BadRequest(405, f"method {method} not allowed; use {' or '.join(allowed)}")


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        event = await receive()
        if event["type"] == "http.disconnect":
            raise _BadRequest(499, "client disconnected")
        chunk = event.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _BadRequest(413, f"body larger than {limit} bytes")
        chunks.append(chunk)
        if not event.get("more_body", False):
            return b"".join(chunks)


def _parse_message(raw: bytes) -> str:
    try:
        data = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError):
        raise _BadRequest(400, 'body must be JSON like {"message": "hello"}') from None
    if not isinstance(data, dict) or not isinstance(data.get("message"), str):
        raise _BadRequest(400, 'body must be JSON like {"message": "hello"}')
    return data["message"]


def _json(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def create_app(config: AgentConfig | None = None) -> AgentApp:
    return AgentApp(config or AgentConfig.from_env())
