"""The "inference": a deterministic reply plus a hash loop that spends exactly the CPU budget.

The loop runs until the calling thread's own CPU clock (`time.thread_time_ns`) has advanced by
the budget, so a request costs ``work_ms`` of CPU whatever the machine's speed, and however
much the thread is throttled or preempted (waiting does not count, only running).

A request whose client has gone away (timed out, or the load balancer closed the connection) is
abandoned between two chunks: like a real service that checks for cancellation, a replica does
not keep burning CPU on answers nobody will read.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["WorkResult", "burn_cpu", "do_work", "reply_text"]

#: Hash rounds between two reads of the CPU clock (~0.1 ms on a laptop core).
CHUNK = 200


@dataclass(frozen=True)
class WorkResult:
    reply: str
    cpu_ms: float
    rounds: int
    abandoned: bool = False


def reply_text(message: str) -> str:
    """The answer depends only on the message (same message, same reply, on any replica)."""
    digest = hashlib.sha256(message.encode()).hexdigest()
    words = len(message.split())
    return f"I thought hard about your {words}-word message; my answer is {digest[:16]}."


def burn_cpu(budget_ms: float, seed: bytes = b"scalelab", cancelled: Callable[[], bool] | None = None) -> int:
    """Hash in a loop until this thread has used `budget_ms` of CPU, or ``cancelled()``; returns the rounds done."""
    if budget_ms <= 0:
        return 0
    deadline = time.thread_time_ns() + int(budget_ms * 1e6)
    state = hashlib.sha256(seed).digest()
    rounds = 0
    while time.thread_time_ns() < deadline:
        if cancelled is not None and cancelled():
            break
        for _ in range(CHUNK):
            state = hashlib.sha256(state).digest()
        rounds += CHUNK
    return rounds


def do_work(message: str, work_ms: float, cancelled: Callable[[], bool] | None = None) -> WorkResult:
    start = time.thread_time_ns()
    if cancelled is not None and cancelled():  # the client left while the request was queued
        return WorkResult("", 0.0, 0, abandoned=True)
    rounds = burn_cpu(work_ms, message.encode(), cancelled)
    abandoned = cancelled is not None and cancelled()
    reply = "" if abandoned else reply_text(message)
    return WorkResult(reply, (time.thread_time_ns() - start) / 1e6, rounds, abandoned)
