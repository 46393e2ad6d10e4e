"""Fault injection for an emulated service: 5xx, dropped connections, latency, 429 bursts, offline.

The sync engine's retry, back-off and resume logic can only be tested against a server that
misbehaves on demand. This is a plain ASGI middleware so it works for any Starlette app; the
``/_emulator`` control surface is never faulted, so tests can always switch faults off again.
"""

from __future__ import annotations

import asyncio
import random
import threading
from dataclasses import asdict, dataclass, fields
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["DropConnection", "FaultConfig", "FaultInjector"]


class DropConnection(Exception):
    """Raised after the response has started so uvicorn closes the socket mid-response."""


@dataclass
class FaultConfig:
    error_rate: float = 0.0  # share of requests answered with ``error_status``
    error_status: int = 503
    drop_rate: float = 0.0  # share of requests whose connection is cut mid-response
    latency_ms: int = 0  # added to every request
    latency_jitter_ms: int = 0  # plus uniform 0..jitter
    throttle_burst: int = 0  # the next N requests get 429 (counts down)
    retry_after: int = 1  # seconds, sent with 429 and 503
    offline: bool = False  # every request's connection is cut, as if the network were down
    seed: int | None = None  # makes the random choices repeatable

    def update(self, values: dict[str, Any]) -> None:
        known = {f.name: f.type for f in fields(self)}
        for key, value in values.items():
            if key not in known:
                raise ValueError(f"unknown fault setting '{key}'")
            current = getattr(self, key)
            if key == "seed":
                setattr(self, key, None if value is None else int(value))
            elif isinstance(current, bool):
                setattr(
                    self,
                    key,
                    value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes"),
                )
            elif isinstance(current, int):
                setattr(self, key, int(value))
            else:
                setattr(self, key, float(value))
        for rate in ("error_rate", "drop_rate"):
            if not 0.0 <= getattr(self, rate) <= 1.0:
                raise ValueError(f"{rate} must be between 0 and 1")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class FaultInjector:
    """Wraps ``app``; change ``config`` (thread-safe via ``configure``) at any time."""

    def __init__(
        self, app: ASGIApp, config: FaultConfig | None = None, exempt_prefix: str = "/_emulator"
    ) -> None:
        self.app = app
        self.config = config or FaultConfig()
        self._exempt = exempt_prefix
        self._lock = threading.Lock()
        self._random = random.Random(self.config.seed)
        self.counts = {"requests": 0, "errors": 0, "drops": 0, "throttled": 0}

    def configure(self, values: dict[str, Any]) -> FaultConfig:
        with self._lock:
            candidate = FaultConfig(**self.config.as_dict())
            candidate.update(values)
            self.config = candidate
            if "seed" in values:
                self._random = random.Random(candidate.seed)
        return self.config

    def reset(self) -> FaultConfig:
        with self._lock:
            self.config = FaultConfig()
        return self.config

    def _decide(self) -> tuple[str, float]:
        with self._lock:
            cfg = self.config
            self.counts["requests"] += 1
            delay = cfg.latency_ms / 1000 + (
                self._random.uniform(0, cfg.latency_jitter_ms) / 1000 if cfg.latency_jitter_ms else 0.0
            )
            if cfg.offline:
                self.counts["drops"] += 1
                return "drop", delay
            if cfg.throttle_burst > 0:
                cfg.throttle_burst -= 1
                self.counts["throttled"] += 1
                return "throttle", delay
            if cfg.drop_rate and self._random.random() < cfg.drop_rate:
                self.counts["drops"] += 1
                return "drop", delay
            if cfg.error_rate and self._random.random() < cfg.error_rate:
                self.counts["errors"] += 1
                return "error", delay
            return "pass", delay

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self._exempt):
            await self.app(scope, receive, send)
            return
        action, delay = self._decide()
        if delay:
            await asyncio.sleep(delay)
        if action == "pass":
            await self.app(scope, receive, send)
            return
        if action == "drop":
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"1024")],
                }
            )
            await send({"type": "http.response.body", "body": b'{"value": [', "more_body": True})
            raise DropConnection("fault injection: connection dropped")
        status = 429 if action == "throttle" else self.config.error_status
        body = (
            b'{"error":{"code":"TooManyRequests","message":"Rate limit exceeded. Retry later."}}'
            if status == 429
            else b'{"error":{"code":"ServiceUnavailable","message":"The service is temporarily unavailable."}}'
        )
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if status in (429, 503):
            headers.append((b"retry-after", str(self.config.retry_after).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
