"""One resilient HTTP channel to an organization: auth, retries, throttling, concurrency, error mapping.

Both connectors send every request through :meth:`HttpTransport.request`. It returns only 2xx/304
responses; every other outcome is a :mod:`crmsync_desktop.errors` exception, translated once by
:mod:`.errors`. Retry rules:

* 429: wait exactly ``Retry-After`` (all concurrent requests wait behind the same gate), halve the
  concurrency limit, retry — for any method, since a throttled request was never executed.
* 502/503/504, timeouts and dropped connections: exponential backoff with jitter, only for idempotent
  requests (GET, PUT, DELETE, and PATCH/POST the caller marks idempotent, e.g. upserts by client id).
* A connection that could not be opened at all is retried for any method (nothing was sent).
* 401: exactly one credential refresh, then the request is sent once more.
"""

from __future__ import annotations

import asyncio
import http.cookiejar
import json
import logging
import ssl
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Protocol

import httpx

from crmsync_desktop import errors
from crmsync_desktop.sync.connectors.http.errors import (
    RETRYABLE_STATUSES,
    describe_url,
    error_for_status,
    parse_odata_error,
    parse_retry_after,
    translate_transport_error,
    unreadable_body,
)
from crmsync_desktop.sync.connectors.http.retry import AimdGovernor, Clock, RetryPolicy, SystemClock
from crmsync_desktop.sync.connectors.types import ThrottleState

log = logging.getLogger(__name__)

JSON_IN_THREAD_AT = 256 * 1024  # bytes: bigger bodies are parsed in a worker thread (the event loop stays free)
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
# Failures where the request provably never reached the server: safe to retry for any method.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


class RequestAuth(Protocol):
    """Adds credentials to requests and can renew them once after a 401."""

    async def headers(self) -> Mapping[str, str]: ...

    async def refresh(self, challenge: str | None) -> bool:
        """Renew the credential after a 401 (``challenge`` = its WWW-Authenticate); ``False``: cannot."""
        ...


class HttpTransport:
    """An ``httpx.AsyncClient`` with the retry, throttling and error rules above.

    Args:
        base_url: the API root, ending with ``/``; relative request paths are resolved against it.
        auth: supplies the Authorization header.
        transport: an httpx transport to use instead of the network (tests: ``httpx.MockTransport``).
        verify: ``True``, or an ``ssl.SSLContext`` trusting a custom CA (the emulator's).
        code_map: product error codes (lower-case) mapped to domain error classes.
    """

    def __init__(
        self,
        base_url: str,
        *,
        auth: RequestAuth | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        verify: Any = True,
        clock: Clock | None = None,
        policy: RetryPolicy | None = None,
        governor: AimdGovernor | None = None,
        default_headers: Mapping[str, str] | None = None,
        code_map: Mapping[str, type[errors.RemoteError]] | None = None,
        timeout_s: float = 120.0,
    ) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url,
            transport=transport,
            verify=verify,
            timeout=httpx.Timeout(timeout_s, connect=15.0),
            headers=dict(default_headers or {}),
            follow_redirects=False,
        )
        # Dataverse pins clients to one web server with an affinity cookie; without cookies,
        # parallel requests spread across servers, each with its own limits (docs §7.2).
        self._client.cookies.jar.set_policy(_NoCookies())
        self.auth = auth
        self.clock: Clock = clock or SystemClock()
        self.policy = policy or RetryPolicy()
        self.governor = governor or AimdGovernor()
        self._code_map = dict(code_map or {})
        self._gate_until = 0.0  # monotonic time before which no request is sent
        self._throttled_until_wall = None
        self._remaining_requests: int | None = None
        self._remaining_ms: int | None = None
        self._throttle_events = 0

    @property
    def base_url(self) -> httpx.URL:
        return self._client.base_url

    def throttle_state(self) -> ThrottleState:
        active = self._gate_until > self.clock.monotonic()
        return ThrottleState(
            throttled_until=self._throttled_until_wall if active else None,
            remaining_requests=self._remaining_requests,
            remaining_execution_ms=self._remaining_ms,
            concurrency_limit=self.governor.limit,
            concurrency_ceiling=self.governor.ceiling,
            in_flight=self.governor.in_flight,
            throttle_events=self._throttle_events,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def request(
        self,
        method: str,
        url: str | httpx.URL,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        content: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
    ) -> httpx.Response:
        """Send one request with the rules of this module; return a 2xx/304 response (body read)."""
        method = method.upper()
        safe_to_repeat = idempotent if idempotent is not None else method in IDEMPOTENT_METHODS
        body: bytes | str | None = content
        extra = dict(headers or {})
        if json_body is not None:
            body = json.dumps(json_body, separators=(",", ":"))
            extra.setdefault("Content-Type", "application/json")
        refreshed = False
        attempt = 0
        while True:
            attempt += 1
            await self._wait_gate()
            send_headers = dict(extra)
            if self.auth is not None:
                send_headers.update(await self.auth.headers())
            await self.governor.acquire()
            try:
                response = await self._client.request(method, url, params=params, content=body, headers=send_headers)
            except httpx.HTTPError as exc:
                err = translate_transport_error(exc, exc.request.url if _has_request(exc) else url)
                retry = isinstance(exc, _NOT_SENT) or safe_to_repeat
                retry = retry and type(err) is errors.NetworkError and attempt < self.policy.max_attempts
                if not retry:
                    raise err from exc
                delay = self.policy.backoff_s(attempt)
                log.info("%s %s failed (%s); retry %d in %.2fs", method, describe_url(url), type(exc).__name__, attempt, delay)
                await self.governor.release()
                await self.clock.sleep(delay)
                continue
            else:
                await self.governor.release()
            self._observe(response)
            status = response.status_code
            if status < 400:
                self.governor.on_success()
                return response
            if status == 401 and not refreshed and self.auth is not None:
                refreshed = True
                if await self.auth.refresh(response.headers.get("WWW-Authenticate")):
                    attempt -= 1  # the refresh retry does not count against the retry budget
                    continue
            code, message = parse_odata_error(response.content)
            retry_after = parse_retry_after(response.headers.get("Retry-After"), self.clock.now())
            err = error_for_status(
                status, url=response.request.url, code=code, message=message, retry_after=retry_after,
                code_map=self._code_map,
            )
            if isinstance(err, errors.ThrottledError):
                self.governor.on_throttled()
                self._throttle_events += 1
                wait = retry_after if retry_after is not None else self.policy.backoff_s(attempt)
                self._set_gate(wait)
                if wait > self.policy.max_retry_after_s or attempt >= self.policy.max_attempts:
                    raise errors.ThrottledError(
                        err.message, retry_after=wait, status=status, code=code or None
                    )
                log.info("%s %s throttled; waiting %.2fs (Retry-After)", method, describe_url(url), wait)
                continue  # _wait_gate() sleeps exactly `wait`
            if status in RETRYABLE_STATUSES and safe_to_repeat and attempt < self.policy.max_attempts:
                delay = retry_after if retry_after is not None else self.policy.backoff_s(attempt)
                log.info("%s %s answered %d; retry %d in %.2fs", method, describe_url(url), status, attempt, delay)
                await self.clock.sleep(delay)
                continue
            raise err

    async def get_json(self, url: str | httpx.URL, **kw: Any) -> Any:
        response = await self.request("GET", url, **kw)
        if len(response.content) >= JSON_IN_THREAD_AT:  # a big page: parse off the event loop
            return await asyncio.to_thread(json_of, response)
        return json_of(response)

    # -- internals ------------------------------------------------------------------------------
    async def _wait_gate(self) -> None:
        while True:
            remaining = self._gate_until - self.clock.monotonic()
            if remaining <= 0:
                return
            await self.clock.sleep(remaining)

    def _set_gate(self, seconds: float) -> None:
        until = self.clock.monotonic() + seconds
        if until > self._gate_until:
            self._gate_until = until
            self._throttled_until_wall = self.clock.now() + timedelta(seconds=seconds)

    def _observe(self, response: httpx.Response) -> None:
        h = response.headers
        hint = _int_header(h.get("x-ms-dop-hint"))
        if hint:
            self.governor.set_ceiling(hint)
        burst = _int_header(h.get("x-ms-ratelimit-burst-remaining-xrm-requests"))
        if burst is not None:
            self._remaining_requests = burst
        left_ms = _int_header(h.get("x-ms-ratelimit-time-remaining-xrm-requests"))
        if left_ms is not None:
            self._remaining_ms = left_ms
        log.debug("%s %s -> %d", response.request.method, describe_url(response.request.url), response.status_code)


def tls_verify(ca_bundle: str | None, verify_tls: bool = True) -> Any:
    """httpx's ``verify``: the system trust store, plus ``ca_bundle``'s CA when given; ``False`` only when
    ``verify_tls`` is explicitly off (a connection profile's setting; the caller logs a warning)."""
    if not verify_tls:
        return False
    return ssl.create_default_context(cafile=ca_bundle) if ca_bundle else True


def json_of(response: httpx.Response) -> Any:
    """The response body as JSON, or an "unreadable response" domain error."""
    try:
        return json.loads(response.content)
    except (ValueError, UnicodeDecodeError) as exc:
        raise unreadable_body(response.request.url, response.headers.get("Content-Type", ""), exc) from exc


def _int_header(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(float(value.split(",")[0].strip()))
    except ValueError:
        return None


def _has_request(exc: httpx.HTTPError) -> bool:
    try:
        return exc.request is not None
    except RuntimeError:
        return False


class _NoCookies(http.cookiejar.DefaultCookiePolicy):
    """A cookie policy that accepts and returns nothing (see the affinity-cookie note above)."""

    def set_ok(self, cookie: http.cookiejar.Cookie, request: object) -> bool:
        return False

    def return_ok(self, cookie: http.cookiejar.Cookie, request: object) -> bool:
        return False
