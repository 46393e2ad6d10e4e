"""Time as the engine sees it: a wall clock for *when* and a sleep for *how long to wait*.

Code that schedules takes a :class:`Clock` instead of calling ``datetime.now()`` and
``asyncio.sleep()``, so tests inject a fake one and never wait for real. The two halves are
deliberately different clocks: ``now()`` is the wall clock (it jumps forward over a suspend),
``sleep()`` runs on the event loop's monotonic clock (which stops during a suspend). Never derive
a due time from how long a sleep lasted.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """The wall clock and a way to wait."""

    def now(self) -> datetime:
        """The current time as an aware UTC datetime."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (on the loop's monotonic clock)."""
        ...


class SystemClock:
    """The real clock: ``datetime.now(UTC)`` and ``asyncio.sleep``."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
