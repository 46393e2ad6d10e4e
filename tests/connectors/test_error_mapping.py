"""Every httpx exception class and every HTTP error status maps to a domain error with an actionable message."""

from __future__ import annotations

import http
import json
from datetime import UTC

import httpx
import pytest

from crmsync_desktop import errors
from crmsync_desktop.sync.connectors.dataverse.errors import CODE_MAP
from crmsync_desktop.sync.connectors.http.errors import (
    error_for_status,
    parse_retry_after,
    translate_transport_error,
)
from crmsync_desktop.sync.connectors.http.transport import json_of

REQUEST = httpx.Request("GET", "https://contoso.crm.example.com/api/data/v9.2/accounts?$deltatoken=SECRET")


def all_subclasses(cls: type) -> list[type]:
    out: list[type] = []
    for sub in cls.__subclasses__():
        out += [sub, *all_subclasses(sub)]
    return out


HTTPX_ERRORS = sorted({httpx.HTTPError, *all_subclasses(httpx.HTTPError)}, key=lambda c: c.__name__)


def make(cls: type[httpx.HTTPError]) -> httpx.HTTPError:
    if issubclass(cls, httpx.HTTPStatusError):
        return cls("boom", request=REQUEST, response=httpx.Response(503, request=REQUEST))
    if issubclass(cls, httpx.RequestError):
        return cls("boom", request=REQUEST)
    return cls("boom")


def test_walk_finds_the_transport_tree() -> None:
    names = {c.__name__ for c in HTTPX_ERRORS}
    assert {"ConnectTimeout", "ReadTimeout", "WriteTimeout", "PoolTimeout", "ConnectError", "ReadError", "WriteError",
            "CloseError", "RemoteProtocolError", "LocalProtocolError", "ProxyError", "UnsupportedProtocol",
            "DecodingError", "TooManyRedirects", "HTTPStatusError"} <= names


@pytest.mark.parametrize("cls", HTTPX_ERRORS, ids=lambda c: c.__name__)
def test_every_httpx_exception_maps_to_a_domain_error(cls: type[httpx.HTTPError]) -> None:
    err = translate_transport_error(make(cls), REQUEST.url)
    assert isinstance(err, errors.CrmSyncError)
    assert err.title and len(err.message) > 40
    assert "SECRET" not in err.message  # the query (FetchXML, tokens) is never echoed
    if issubclass(cls, (httpx.TransportError,)) and not issubclass(cls, (httpx.UnsupportedProtocol, httpx.LocalProtocolError)):
        assert isinstance(err, errors.NetworkError)


ERROR_STATUSES = [s for s in http.HTTPStatus if s >= 400] + [418, 499, 520, 599]


@pytest.mark.parametrize("status", ERROR_STATUSES, ids=str)
def test_every_error_status_maps_to_a_domain_error(status: int) -> None:
    err = error_for_status(int(status), url=REQUEST.url, message="detail from server", retry_after=3)
    assert isinstance(err, (errors.RemoteError, errors.AuthError))
    assert "detail from server" in err.message and len(err.message) > 40
    expected: dict[int, type[errors.CrmSyncError]] = {
        400: errors.ValidationError, 401: errors.AuthError, 403: errors.PrivilegeError, 404: errors.NotFoundError,
        409: errors.ConcurrencyError, 412: errors.ConcurrencyError, 413: errors.ValidationError, 429: errors.ThrottledError,
    }
    if int(status) in expected:
        assert type(err) is expected[int(status)]
    elif status >= 500:
        assert isinstance(err, errors.ServerError) and err.retryable
    if isinstance(err, errors.RemoteError):
        assert err.status == int(status)


@pytest.mark.parametrize(
    ("code", "cls"),
    [("0x80044352", errors.FullResyncRequired), ("0x80060882", errors.ConcurrencyError),
     ("0x80040220", errors.PrivilegeError), ("0x80072321", errors.ThrottledError), ("0x8004A001", errors.ServerError)],
)
def test_dataverse_codes_override_the_status(code: str, cls: type[errors.RemoteError]) -> None:
    err = error_for_status(400, code=code.lower(), message="m", code_map=CODE_MAP)
    assert type(err) is cls


def test_retry_after_seconds_and_http_date() -> None:
    from datetime import datetime
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("7", now) == 7.0
    assert parse_retry_after("Wed, 01 Jan 2025 12:00:30 GMT", now) == 30.0
    assert parse_retry_after("garbage", now) is None and parse_retry_after(None) is None


def test_json_decode_failure_maps_to_remote_error() -> None:
    response = httpx.Response(200, content=b"{not json", request=REQUEST, headers={"Content-Type": "application/json"})
    with pytest.raises(errors.RemoteError) as info:
        json_of(response)
    assert isinstance(info.value.__cause__, json.JSONDecodeError)
    assert "SECRET" not in info.value.message
