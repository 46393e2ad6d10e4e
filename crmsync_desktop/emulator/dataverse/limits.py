"""Service protection limits, per user, over a sliding window: number of requests, combined execution
time, concurrent requests -> 429 with ``Retry-After`` and the throttling error codes; plus the
informational ``x-ms-ratelimit-*`` / ``x-ms-dop-hint`` headers.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from . import errors
from .config import ServiceLimits


@dataclass
class _UserWindow:
    requests: deque[float] = field(default_factory=deque)
    executions: deque[tuple[float, float]] = field(default_factory=deque)  # (finished at, seconds)
    execution_total: float = 0.0
    concurrent: int = 0


class RateLimiter:
    def __init__(self, limits: Callable[[], ServiceLimits], clock: Callable[[], float] = time.monotonic) -> None:
        self._limits = limits
        self._clock = clock
        self._users: dict[str, _UserWindow] = {}
        self._lock = threading.Lock()

    def _purge(self, w: _UserWindow, now: float, window: float) -> None:
        while w.requests and w.requests[0] <= now - window:
            w.requests.popleft()
        while w.executions and w.executions[0][0] <= now - window:
            w.execution_total -= w.executions.popleft()[1]

    def admit(self, user: str) -> None:
        """Count a request in, or raise the 429 the service would answer."""
        limits = self._limits()
        with self._lock:
            w = self._users.setdefault(user, _UserWindow())
            now = self._clock()
            self._purge(w, now, limits.window_seconds)
            if limits.enabled:
                if w.concurrent >= limits.concurrent_requests:
                    raise _throttled(errors.THROTTLING_CONCURRENCY,
                                     f"Number of concurrent requests exceeded the limit of {limits.concurrent_requests}.",
                                     1)
                if len(w.requests) >= limits.requests_per_window:
                    retry = w.requests[0] + limits.window_seconds - now
                    raise _throttled(errors.THROTTLING_REQUESTS,
                                     f"Number of requests exceeded the limit of {limits.requests_per_window} over "
                                     f"time window of {int(limits.window_seconds)} seconds.", retry)
                if w.execution_total >= limits.execution_seconds_per_window:
                    retry = w.executions[0][0] + limits.window_seconds - now if w.executions else 1
                    raise _throttled(errors.THROTTLING_TIME,
                                     "Combined execution time of incoming requests exceeded limit of "
                                     f"{int(limits.execution_seconds_per_window * 1000):,} milliseconds over time "
                                     f"window of {int(limits.window_seconds)} seconds. Decrease number of concurrent "
                                     "requests or reduce the duration of requests and try again later.", retry)
            w.requests.append(now)
            w.concurrent += 1

    def release(self, user: str, seconds: float) -> None:
        with self._lock:
            w = self._users.setdefault(user, _UserWindow())
            w.concurrent = max(0, w.concurrent - 1)
            w.executions.append((self._clock(), seconds))
            w.execution_total += seconds

    def headers(self, user: str) -> dict[str, str]:
        limits = self._limits()
        with self._lock:
            w = self._users.get(user) or _UserWindow()
            self._purge(w, self._clock(), limits.window_seconds)
            remaining = max(0, limits.requests_per_window - len(w.requests))
            time_left = max(0.0, limits.execution_seconds_per_window - w.execution_total)
        return {"x-ms-ratelimit-burst-remaining-xrm-requests": str(remaining),
                "x-ms-ratelimit-time-remaining-xrm-requests": f"{time_left:,.2f}",
                "x-ms-dop-hint": str(limits.dop_hint)}


def _throttled(code: str, message: str, retry_after: float) -> errors.DataverseError:
    seconds = max(1, math.ceil(retry_after))
    return errors.DataverseError(429, code, message, {"Retry-After": str(seconds)})


def throttled_burst(retry_after: int) -> errors.DataverseError:
    return _throttled(errors.THROTTLING_REQUESTS,
                      "Number of requests exceeded the limit of 6000 over time window of 300 seconds.", retry_after)
