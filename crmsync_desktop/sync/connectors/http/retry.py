"""Time, retries and concurrency for the connectors: an injectable clock, backoff, an AIMD governor.

Hand-rolled on purpose: the policy is a handful of lines tied to HTTP semantics that general retry
libraries (tenacity, backoff, stamina) do not model — ``Retry-After`` honoured exactly, a shared
"throttled until" gate for all concurrent requests, idempotency decided per request, and a
concurrency limit that reacts to 429s (AIMD) — and none of them is a project dependency. Tests
inject a fake clock, so nothing here ever sleeps for real in a test.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """Time as an input: ``monotonic`` for deadlines, ``now`` for display, ``sleep`` to wait."""

    def monotonic(self) -> float: ...

    def now(self) -> datetime: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@dataclass
class RetryPolicy:
    """How often and how long to retry.

    Args:
        max_attempts: attempts per request, the first included.
        base_delay_s: first backoff step; doubles per attempt up to ``max_delay_s``.
        max_retry_after_s: a ``Retry-After`` longer than this is not slept through: the request
            fails with ``ThrottledError`` so the engine can reschedule instead of blocking.
        rng: jitter source (inject a seeded one in tests).
    """

    max_attempts: int = 6
    base_delay_s: float = 0.5
    max_delay_s: float = 60.0
    max_retry_after_s: float = 300.0
    rng: random.Random = field(default_factory=random.Random)

    def backoff_s(self, attempt: int) -> float:
        """Delay before retry number ``attempt`` (1-based): "equal jitter" exponential backoff."""
        ceiling = min(self.max_delay_s, self.base_delay_s * (2 ** (attempt - 1)))
        return ceiling / 2 + self.rng.uniform(0, ceiling / 2)


class AimdGovernor:
    """Bounds in-flight requests; the bound halves on a 429 and grows by ~1 per window of successes.

    The ceiling comes from Dataverse's ``x-ms-dop-hint`` header (recommended degree of parallelism)
    when the server sends one.
    """

    def __init__(self, initial: int = 4, ceiling: int = 16, floor: int = 1) -> None:
        self._floor = floor
        self._ceiling = max(floor, ceiling)
        self._limit = float(min(max(initial, floor), self._ceiling))
        self._in_flight = 0
        self._cond = asyncio.Condition()

    @property
    def limit(self) -> int:
        return max(self._floor, int(self._limit))

    @property
    def ceiling(self) -> int:
        return self._ceiling

    @property
    def in_flight(self) -> int:
        return self._in_flight

    async def acquire(self) -> None:
        async with self._cond:
            await self._cond.wait_for(lambda: self._in_flight < self.limit)
            self._in_flight += 1

    async def release(self) -> None:
        async with self._cond:
            self._in_flight -= 1
            self._cond.notify_all()

    def on_success(self) -> None:
        if self._limit < self._ceiling:
            self._limit = min(float(self._ceiling), self._limit + 1.0 / max(self._limit, 1.0))

    def on_throttled(self) -> None:
        self._limit = max(float(self._floor), self._limit / 2)

    def set_ceiling(self, ceiling: int) -> None:
        ceiling = max(self._floor, ceiling)
        if ceiling != self._ceiling:
            self._ceiling = ceiling
            self._limit = min(self._limit, float(ceiling))
