"""Retry, throttling, concurrency and re-authentication rules of the shared HTTP transport."""

from __future__ import annotations

import asyncio
import random
import ssl

import httpx
import pytest
import respx

from crmsync_desktop import errors
from crmsync_desktop.auth.msal_provider import StaticTokenProvider
from crmsync_desktop.sync.connectors.dataverse import DataverseConnector
from crmsync_desktop.sync.connectors.http.retry import AimdGovernor, RetryPolicy
from tests.connectors.conftest import FakeClock

pytestmark = pytest.mark.asyncio
WHOAMI = {"UserId": "u", "BusinessUnitId": "b", "OrganizationId": "o"}


async def test_429_waits_exactly_retry_after_then_succeeds(dv: DataverseConnector, dv_router: respx.MockRouter, clock: FakeClock) -> None:
    route = dv_router.get("WhoAmI")
    route.side_effect = [
        httpx.Response(429, headers={"Retry-After": "7"}, json={"error": {"code": "0x80072322", "message": "Number of requests exceeded the limit of 6000 over time window of 300 seconds."}}),
        httpx.Response(200, json=WHOAMI, headers={"x-ms-ratelimit-burst-remaining-xrm-requests": "5999"}),
    ]
    before = dv.http.governor.limit
    body = await dv.http.get_json("WhoAmI")
    assert body == WHOAMI
    assert clock.sleeps == [7.0]
    assert route.call_count == 2
    state = dv.throttle_state()
    assert state.throttle_events == 1 and state.remaining_requests == 5999
    assert state.concurrency_limit == max(1, before // 2)
    assert state.throttled_until is None  # the wait is over


async def test_throttle_state_while_throttled_and_long_retry_after_is_not_slept(dv: DataverseConnector, dv_router: respx.MockRouter, clock: FakeClock) -> None:
    dv_router.get("WhoAmI").respond(429, headers={"Retry-After": "900"})
    with pytest.raises(errors.ThrottledError) as info:
        await dv.http.get_json("WhoAmI")
    assert info.value.retry_after == 900 and info.value.retryable
    assert clock.sleeps == []  # longer than max_retry_after_s: the engine reschedules instead
    state = dv.throttle_state()
    assert state.throttled_until is not None and (state.throttled_until - clock.now()).total_seconds() == 900


async def test_429_retried_even_for_post_because_nothing_ran(dv: DataverseConnector, dv_router: respx.MockRouter, clock: FakeClock) -> None:
    route = dv_router.post("accounts")
    route.side_effect = [httpx.Response(429, headers={"Retry-After": "2"}), httpx.Response(204)]
    await dv.http.request("POST", "accounts", json_body={"name": "x"})
    assert clock.sleeps == [2.0] and route.call_count == 2


async def test_503_storm_backs_off_with_jitter_then_succeeds(dv: DataverseConnector, dv_router: respx.MockRouter, clock: FakeClock) -> None:
    route = dv_router.get("WhoAmI")
    route.side_effect = [httpx.Response(503)] * 4 + [httpx.Response(200, json=WHOAMI)]
    assert await dv.http.get_json("WhoAmI") == WHOAMI
    assert len(clock.sleeps) == 4
    for attempt, slept in enumerate(clock.sleeps, start=1):
        ceiling = min(60.0, 0.5 * 2 ** (attempt - 1))
        assert ceiling / 2 <= slept <= ceiling


async def test_503_storm_gives_up_with_server_error(dv: DataverseConnector, dv_router: respx.MockRouter, clock: FakeClock) -> None:
    route = dv_router.get("WhoAmI").respond(503, json={"error": {"code": "", "message": "Service Unavailable"}})
    with pytest.raises(errors.ServerError) as info:
        await dv.http.get_json("WhoAmI")
    assert route.call_count == 5 and info.value.retryable and info.value.status == 503


async def test_non_idempotent_post_is_not_retried_on_503_or_dropped_connection(dv: DataverseConnector, dv_router: respx.MockRouter, clock: FakeClock) -> None:
    route = dv_router.post("accounts").respond(503)
    with pytest.raises(errors.ServerError):
        await dv.http.request("POST", "accounts", json_body={})
    assert route.call_count == 1
    dropped = dv_router.post("contacts").mock(side_effect=httpx.ReadError("connection reset"))
    with pytest.raises(errors.NetworkError):
        await dv.http.request("POST", "contacts", json_body={})
    assert dropped.call_count == 1 and clock.sleeps == []


async def test_dropped_connections_and_timeouts_retried_for_idempotent_calls(dv: DataverseConnector, dv_router: respx.MockRouter, clock: FakeClock) -> None:
    route = dv_router.get("WhoAmI")
    route.side_effect = [httpx.ReadError("reset"), httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("eof"),
                         httpx.Response(200, json=WHOAMI)]
    assert await dv.http.get_json("WhoAmI") == WHOAMI
    assert len(clock.sleeps) == 3
    connect = dv_router.post("accounts")  # never connected: safe to retry any method
    connect.side_effect = [httpx.ConnectError("refused"), httpx.Response(204)]
    await dv.http.request("POST", "accounts", json_body={})
    assert connect.call_count == 2


async def test_401_refreshes_token_exactly_once(dv: DataverseConnector, dv_router: respx.MockRouter, tokens: StaticTokenProvider) -> None:
    route = dv_router.get("WhoAmI")
    route.side_effect = [httpx.Response(401, headers={"WWW-Authenticate": "Bearer error=invalid_token"}),
                         httpx.Response(200, json=WHOAMI)]
    assert await dv.http.get_json("WhoAmI") == WHOAMI
    assert tokens.refreshes == 1
    assert [c.request.headers["Authorization"] for c in route.calls] == ["Bearer token-1", "Bearer token-2"]

    route.side_effect = None
    route.return_value = httpx.Response(401)
    with pytest.raises(errors.AuthError) as info:
        await dv.http.get_json("WhoAmI")
    assert tokens.refreshes == 2  # one more refresh for this request, then give up
    assert "401" in info.value.message
    assert "token-" not in info.value.message


async def test_tls_failure_is_a_tls_error_and_not_retried(dv: DataverseConnector, dv_router: respx.MockRouter, clock: FakeClock) -> None:
    exc = httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    exc.__cause__ = ssl.SSLCertVerificationError("self signed certificate")
    dv_router.get("WhoAmI").mock(side_effect=exc)
    with pytest.raises(errors.TlsError, match="CA bundle"):
        await dv.http.get_json("WhoAmI")
    assert clock.sleeps == []


async def test_unreadable_json_is_a_remote_error(dv: DataverseConnector, dv_router: respx.MockRouter) -> None:
    dv_router.get("WhoAmI").respond(200, content=b"<html>proxy login</html>", headers={"Content-Type": "text/html"})
    with pytest.raises(errors.RemoteError, match="could not be read"):
        await dv.whoami()


async def test_governor_aimd_halves_and_grows_additively() -> None:
    gov = AimdGovernor(initial=8, ceiling=16)
    gov.on_throttled()
    assert gov.limit == 4
    for _ in range(5):
        gov.on_success()  # +1/limit per success: about one step per window of `limit` successes
    assert gov.limit == 5
    gov.set_ceiling(3)
    assert gov.limit == 3 and gov.ceiling == 3
    for _ in range(3):
        gov.on_throttled()
    assert gov.limit == 1


async def test_governor_bounds_in_flight_requests() -> None:
    gov = AimdGovernor(initial=2, ceiling=2)
    peak = 0
    running = 0

    async def job() -> None:
        nonlocal peak, running
        await gov.acquire()
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0)
        running -= 1
        await gov.release()

    await asyncio.gather(*(job() for _ in range(10)))
    assert peak == 2 and gov.in_flight == 0


async def test_concurrent_requests_share_the_throttle_gate(dv_router: respx.MockRouter, clock: FakeClock) -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            return httpx.Response(429, headers={"Retry-After": "3"})
        return httpx.Response(200, json=WHOAMI)

    dv_router.get("WhoAmI").mock(side_effect=handler)
    connector = DataverseConnector.__new__(DataverseConnector)  # only the transport is exercised
    from crmsync_desktop.sync.connectors.dataverse.client import DataverseSettings
    DataverseConnector.__init__(connector, DataverseSettings("https://contoso.crm.example.com", initial_concurrency=1),
                                StaticTokenProvider(), transport=httpx.MockTransport(dv_router.async_handler),
                                clock=clock, policy=RetryPolicy(rng=random.Random(1)))
    try:
        results = await asyncio.gather(*(connector.http.get_json("WhoAmI") for _ in range(3)))
    finally:
        await connector.aclose()
    assert results == [WHOAMI] * 3
    assert sum(clock.sleeps) == 3.0  # everyone waited behind one gate, not 3 s each
