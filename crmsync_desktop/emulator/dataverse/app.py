"""The HTTP face of an emulated org: ``create_app(org, authenticator)`` -> Starlette application.

Per data request, in the order a client would meet them: faults that look like the network
(offline, dropped connections), bearer authentication (401 + ``WWW-Authenticate``), injected 429
bursts, service-protection limits, injected 5xx, latency, the request itself (in a worker thread,
under the org lock), then what is left of the cost per record (the time the request itself took counts
towards it). The ``/_emulator`` admin API is unauthenticated (it is
bound to loopback with the emulator) and changes the org at run time.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import json
import random
import time
import uuid
from typing import Any

import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import Request as StarletteRequest
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import Receive, Scope, Send

from ..auth_protocol import BearerAuthenticator, InvalidToken
from . import errors
from .limits import RateLimiter, throttled_burst
from .org import DataverseOrg
from .service import DataverseService, error_response
from .service import Request as ServiceRequest

VERSIONS = ("v9.0", "v9.1", "v9.2")
_RAW_SEND = "crmsync.emulator.raw_send"


class _EmulatorStarlette(Starlette):
    """Starlette that remembers the server's own ``send`` so a fault can drop the connection."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope[_RAW_SEND] = send
        await super().__call__(scope, receive, send)


class _FaultDice:
    def __init__(self, org: DataverseOrg) -> None:
        self.org = org
        self.reset()
        org.listeners.append(lambda _what: self.reset())

    def reset(self) -> None:
        self.rng = random.Random(self.org.faults.seed)

    def roll(self, rate: float) -> bool:
        return rate > 0 and (rate >= 1 or self.rng.random() < rate)


def _headers(request: StarletteRequest) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in request.headers.items():
        out[k] = f"{out[k]}, {v}" if k in out else v
    return out


async def _drop_connection(request: StarletteRequest) -> Response:
    """Close the TCP connection without answering (uvicorn's send is bound to its protocol cycle)."""
    send = request.scope.get(_RAW_SEND)
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None:
        raise ConnectionAbortedError("emulated dropped connection")
    transport.close()
    await asyncio.sleep(0.05)  # let the server see the disconnect; anything sent now is discarded
    return Response(status_code=500)


class _PiecewiseResponse(Response):
    """A body given in pieces (a page of rows, ~7 MB for 5,000 rows), sent in slices of about 256 KiB.

    Same status, headers (``content-length`` included) and bytes as ``Response(content=b"".join(parts))``; the
    page is just never copied into one buffer, here or in the TLS layer below.
    """

    SLICE = 256 * 1024

    def __init__(self, parts: list[bytes], status_code: int, headers: dict[str, str], media_type: str | None) -> None:
        self.status_code = status_code
        if media_type is not None:
            self.media_type = media_type
        self.background = None
        self.parts = parts
        self.ends = list(itertools.accumulate(map(len, parts)))  # where each part ends in the body
        self.body = b""  # not sent: only init_headers reads it (content-length given)
        self.init_headers({**headers, "content-length": str(self.ends[-1] if self.ends else 0)})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        parts, ends, start = self.parts, self.ends, 0
        for limit in range(self.SLICE, ends[-1] if ends else 0, self.SLICE):
            stop = bisect.bisect_left(ends, limit, start) + 1
            if stop < len(parts):
                await send({"type": "http.response.body", "body": b"".join(parts[start:stop]), "more_body": True})
                start = stop
        await send({"type": "http.response.body", "body": b"".join(parts[start:])})


def _to_starlette(r: Any, extra: dict[str, str]) -> Response:
    headers = dict(r.headers)
    headers.update(extra)
    media = headers.pop("Content-Type", None)
    if r.parts is not None and len(r.parts) > 1:
        return _PiecewiseResponse(r.parts, r.status, headers, media)
    return Response(content=r.body, status_code=r.status, headers=headers, media_type=media)


def create_app(org: DataverseOrg, authenticator: BearerAuthenticator) -> Starlette:
    """An ASGI app serving ``org`` under ``/api/data/v9.x/`` plus the ``/_emulator`` admin API."""
    service = DataverseService(org)
    limiter = RateLimiter(lambda: org.limits)
    dice = _FaultDice(org)

    def www_authenticate() -> dict[str, str]:
        return {"WWW-Authenticate": f"Bearer authorization_uri={authenticator.authorization_uri}, "
                                    f"resource_id={org.url}/"}

    async def data(request: StarletteRequest) -> Response:
        version = request.path_params["version"]
        req_id = str(uuid.uuid4())
        base = {"REQ_ID": req_id, "x-ms-service-request-id": req_id}
        if version not in VERSIONS:
            return _to_starlette(error_response(errors.segment_not_found(version)), base)
        org.count_request(request.method, request.path_params["path"])
        faults = org.faults
        if faults.offline or dice.roll(faults.drop_rate):
            return await _drop_connection(request)
        auth = request.headers.get("authorization", "")
        token = auth[7:].strip() if auth[:7].lower() == "bearer " else None
        try:
            principal = authenticator.authenticate(token, org.url)
        except InvalidToken:
            return Response(status_code=401, headers={**base, **www_authenticate()})
        user = principal.object_id
        if faults.throttle_burst > 0:
            faults.throttle_burst -= 1
            e = throttled_burst(faults.throttle_retry_after_s)
            return _to_starlette(error_response(e), {**base, **limiter.headers(user)})
        try:
            limiter.admit(user)
        except errors.DataverseError as e:
            return _to_starlette(error_response(e), {**base, **limiter.headers(user)})
        started = time.monotonic()
        try:
            if dice.roll(faults.error_rate):
                status = faults.error_status
                e = (errors.DataverseError(status, errors.UNEXPECTED, "An unexpected error occurred.")
                     if status == 500 else
                     errors.DataverseError(status, errors.SQL_GOVERNOR_BUSY,
                                           "The server is busy and the request was not completed. Try again later."))
                return _to_starlette(error_response(e), base)
            delay = (org.performance.latency_ms + faults.added_latency_ms) / 1000.0
            if delay > 0:
                await asyncio.sleep(delay)
            working = time.monotonic()
            root = f"{org.base_url or str(request.base_url).rstrip('/')}/api/data/{version}"
            sreq = ServiceRequest(request.method, request.path_params["path"],
                                  request.scope["query_string"].decode("latin-1"), _headers(request),
                                  await request.body(), root, principal,
                                  race=request.method in ("PATCH", "DELETE") and dice.roll(faults.race_rate))
            result = await anyio.to_thread.run_sync(service.handle, sreq)
            # The cost per record is the service's time for the work, which includes the emulator's own: only
            # what is left of it after the request was handled is waited (docs/emulator.md, "Latency and cost").
            cost = org.performance.cost_per_record_ms * result.records / 1000.0 - (time.monotonic() - working)
            if cost > 0:
                await asyncio.sleep(cost)
        finally:
            limiter.release(user, time.monotonic() - started)
        return _to_starlette(result, {**base, **limiter.headers(user)})

    # ---- admin API ---------------------------------------------------------------------------------------
    async def body_of(request: StarletteRequest) -> dict[str, Any]:
        raw = await request.body()
        data_ = json.loads(raw) if raw else {}
        if not isinstance(data_, dict):
            raise ValueError("the body must be a JSON object")
        return data_

    def admin(handler: Any) -> Any:
        async def endpoint(request: StarletteRequest) -> Response:
            try:
                await handler(request)
            except (ValueError, KeyError, TypeError, errors.DataverseError) as e:
                return JSONResponse({"error": str(e)}, status_code=400)
            return JSONResponse(org.config_snapshot())
        return endpoint

    async def get_config(request: StarletteRequest) -> None:
        return None

    async def get_requests(request: StarletteRequest) -> Response:
        return JSONResponse(org.request_counts_snapshot())

    async def reset_requests(request: StarletteRequest) -> Response:
        org.reset_request_counts()
        return JSONResponse(org.request_counts_snapshot())

    async def patch_faults(request: StarletteRequest) -> None:
        org.set_faults(**await body_of(request))

    async def clear_faults(request: StarletteRequest) -> None:
        org.clear_faults()

    async def put_offline(request: StarletteRequest) -> None:
        org.set_offline(bool((await body_of(request)).get("offline", True)))

    async def patch_limits(request: StarletteRequest) -> None:
        org.set_limits(**await body_of(request))

    async def patch_performance(request: StarletteRequest) -> None:
        org.set_performance(**await body_of(request))

    async def put_change_tracking(request: StarletteRequest) -> None:
        org.change_tracking_days = int((await body_of(request))["days"])

    async def expire_tokens(request: StarletteRequest) -> None:
        await anyio.to_thread.run_sync(org.expire_delta_tokens)

    async def put_entity_tracking(request: StarletteRequest) -> None:
        b = await body_of(request)
        org.configure_tracking(request.path_params["entity"], delete=b.get("delete"), owner=b.get("owner"))

    async def put_relationship_tracking(request: StarletteRequest) -> None:
        org.configure_relationship_tracking(request.path_params["schema"],
                                            bool((await body_of(request)).get("enabled", True)))

    async def deny(request: StarletteRequest) -> None:
        b = await body_of(request)
        org.deny_privilege(str(b["object_id"]), str(b["privilege"]))

    async def allow(request: StarletteRequest) -> None:
        b = await body_of(request)
        org.allow_privilege(str(b["object_id"]), str(b["privilege"]))

    admin_routes = [
        Route("/config", admin(get_config), methods=["GET"]),
        Route("/requests", get_requests, methods=["GET"]),
        Route("/requests", reset_requests, methods=["DELETE"]),
        Route("/faults", admin(patch_faults), methods=["PATCH"]),
        Route("/faults", admin(clear_faults), methods=["DELETE"]),
        Route("/offline", admin(put_offline), methods=["PUT"]),
        Route("/limits", admin(patch_limits), methods=["PATCH"]),
        Route("/performance", admin(patch_performance), methods=["PATCH"]),
        Route("/change-tracking", admin(put_change_tracking), methods=["PUT"]),
        Route("/expire-delta-tokens", admin(expire_tokens), methods=["POST"]),
        Route("/tracking/entities/{entity}", admin(put_entity_tracking), methods=["PUT"]),
        Route("/tracking/relationships/{schema}", admin(put_relationship_tracking), methods=["PUT"]),
        Route("/privileges/deny", admin(deny), methods=["POST"]),
        Route("/privileges/allow", admin(allow), methods=["POST"]),
    ]
    methods = ["GET", "POST", "PATCH", "PUT", "DELETE"]
    app = _EmulatorStarlette(routes=[
        Route("/api/data/{version}/{path:path}", data, methods=methods),
        Mount("/_emulator", routes=admin_routes),
    ])
    app.state.org = org
    return app
