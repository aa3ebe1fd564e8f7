"""The one bounded wait: poll a condition until it holds or a deadline passes.

Every "wait until ready / gone / answering" loop in the kit uses `poll_until` (or a `Deadline`
shared by several waits), so all of them are bounded, sleep the same way and can be driven by a
fake clock in tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Deadline", "poll_until"]


@dataclass
class Deadline:
    """A point in monotonic time, shared by consecutive waits of one operation."""

    timeout_s: float
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    at: float = field(init=False)

    def __post_init__(self) -> None:
        self.at = self.clock() + self.timeout_s

    @property
    def passed(self) -> bool:
        return self.clock() > self.at

    @property
    def left_s(self) -> float:
        return max(0.0, self.at - self.clock())

    def poll(self, condition: Callable[[], bool], interval_s: float = 1.0) -> bool:
        """True as soon as ``condition()`` holds; False once the deadline passed (checked once more at the end)."""
        while True:
            if condition():
                return True
            if self.passed:
                return False
            self.sleep(min(interval_s, max(self.left_s, 0.0)) or interval_s)


def poll_until(condition: Callable[[], bool], *, timeout_s: float, interval_s: float = 1.0,
               clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> bool:
    """Call ``condition`` every ``interval_s`` until it returns True (-> True) or ``timeout_s`` passes (-> False)."""
    return Deadline(timeout_s, clock, sleep).poll(condition, interval_s)
