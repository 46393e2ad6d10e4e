"""The one place where httpx exceptions, HTTP statuses and unreadable bodies become domain errors.

Every message says what an administrator can do about it. Request URLs are reported without their
query string (it may hold FetchXML or a delta token); headers are never included, so neither
tokens nor passwords can reach a message or a log.
"""

from __future__ import annotations

import email.utils
import json
import ssl
from collections.abc import Mapping
from datetime import UTC, datetime

import httpx

from crmsync_desktop import errors

# Status codes the connectors treat specially; anything else falls into its class (4xx / 5xx).
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})


def describe_url(url: httpx.URL | str) -> str:
    """``scheme://host/path`` without the query (which can be long and hold tokens)."""
    u = httpx.URL(str(url))
    return str(u.copy_with(query=None, fragment=None))


def _is_tls_failure(exc: BaseException) -> bool:
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, ssl.SSLError) or "CERTIFICATE_VERIFY_FAILED" in str(cur) or "SSL" in type(cur).__name__:
            return True
        cur = cur.__cause__ or cur.__context__
    return False


def translate_transport_error(exc: httpx.HTTPError, url: httpx.URL | str | None = None) -> errors.CrmSyncError:
    """Map any httpx exception to a domain error (the caller raises it ``from exc``)."""
    where = describe_url(url) if url is not None else "the organization"
    if isinstance(exc, httpx.HTTPStatusError):  # only when someone calls raise_for_status()
        return error_for_status(exc.response.status_code, url=exc.request.url)
    if isinstance(exc, httpx.TooManyRedirects):
        return errors.RemoteError(
            f"{where} redirected too many times. Check the organization URL; a proxy or sign-in page may be in the way.",
            title="Too many redirects",
        )
    if isinstance(exc, httpx.DecodingError):
        return errors.RemoteError(
            f"The response from {where} could not be decoded (bad compression or character set). "
            "A proxy may be altering responses; try again or bypass the proxy.",
            title="Unreadable response",
        )
    if isinstance(exc, httpx.UnsupportedProtocol):
        return errors.InvalidUrlError(
            f"{where} is not an http(s) address. Enter the organization URL starting with https://."
        )
    if isinstance(exc, httpx.ProxyError):
        return errors.NetworkError(
            f"The proxy refused or failed the connection to {where}. Check the proxy settings (HTTPS_PROXY) "
            "or ask your network administrator.",
            title="Proxy error",
        )
    if isinstance(exc, httpx.ConnectError) and _is_tls_failure(exc):
        return errors.TlsError(
            f"The secure connection to {where} failed: the server certificate is not trusted. "
            "If the organization uses its own certificate authority, configure its CA bundle; "
            f"otherwise check the system clock and the proxy. ({exc})"
        )
    if isinstance(exc, httpx.TimeoutException):
        kind = {
            httpx.ConnectTimeout: "connecting to",
            httpx.ReadTimeout: "waiting for an answer from",
            httpx.WriteTimeout: "sending the request to",
            httpx.PoolTimeout: "waiting for a free connection to",
        }.get(type(exc), "talking to")
        return errors.NetworkError(
            f"Timed out {kind} {where}. The organization or the network is slow; the sync retries later. "
            "If it keeps happening, lower the page or batch size.",
            title="Request timed out",
        )
    if isinstance(exc, httpx.ConnectError):
        return errors.NetworkError(
            f"Cannot connect to {where}. Check the organization URL, the network connection and the proxy. ({exc})"
        )
    if isinstance(exc, (httpx.ReadError, httpx.WriteError, httpx.CloseError, httpx.RemoteProtocolError)):
        return errors.NetworkError(
            f"The connection to {where} was dropped mid-request. The sync retries later; "
            "if it keeps happening, a proxy or firewall may be cutting long requests."
        )
    if isinstance(exc, httpx.LocalProtocolError):
        return errors.RemoteError(
            f"The request to {where} could not be sent ({exc}). This is a bug in crmsync-desktop; please report it.",
            title="Invalid request",
        )
    # httpx.NetworkError / TransportError / RequestError / HTTPError base classes, and anything new.
    return errors.NetworkError(f"Communication with {where} failed: {exc}.")


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds: an integer (or decimal) number of seconds, or an HTTP date."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return max(0.0, seconds)


def parse_odata_error(body: bytes) -> tuple[str, str]:
    """``(code, message)`` from ``{"error": {"code": ..., "message": ...}}``; empty strings when absent."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        text = body.decode("utf-8", "replace").strip()
        return "", text[:300]
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        err = data["error"]
        return str(err.get("code") or ""), str(err.get("message") or "")
    return "", ""


def error_for_status(
    status: int,
    *,
    url: httpx.URL | str | None = None,
    code: str = "",
    message: str = "",
    retry_after: float | None = None,
    code_map: Mapping[str, type[errors.RemoteError]] | None = None,
) -> errors.RemoteError | errors.AuthError:
    """Map an HTTP error status (>= 400) plus the server's code and message to a domain error.

    ``code_map`` lets a product map its own error codes (e.g. Dataverse ``0x80044352``) to classes
    first; the HTTP status decides otherwise.
    """
    where = describe_url(url) if url is not None else "the organization"
    said = f' The server said: "{message}"' if message else ""
    kw: dict[str, object] = {"status": status, "code": code or None}
    mapped = (code_map or {}).get(code.lower()) if code else None
    if mapped is errors.FullResyncRequired:
        return errors.FullResyncRequired(
            "The change-tracking token has expired (changes are kept only for a limited number of days). "
            f"A full resynchronization of this entity will run.{said}",
            **kw,  # type: ignore[arg-type]
        )
    if status == 429 or mapped is errors.ThrottledError:
        wait = retry_after if retry_after is not None else 0.0
        return errors.ThrottledError(
            f"The organization's service protection limits were hit; it asked to wait {wait:g} s. "
            f"The sync slows down automatically; schedule large syncs outside business hours.{said}",
            retry_after=wait,
            **kw,  # type: ignore[arg-type]
        )
    if mapped is not None:
        return mapped(f"{_generic_text(status, where)}{said}", **kw)  # type: ignore[arg-type]
    if status == 401:
        return errors.AuthError(
            f"{where} rejected the credentials (HTTP 401). Sign in again; for an application user check the "
            f"client secret or certificate and that the application user exists in the organization.{said}",
            title="Credentials rejected",
        )
    cls: type[errors.RemoteError]
    if status == 403:
        cls = errors.PrivilegeError
    elif status in (404, 410):
        cls = errors.NotFoundError
    elif status in (409, 412):
        cls = errors.ConcurrencyError
    elif status >= 500:
        cls = errors.ServerError
    elif status in (400, 405, 413, 414, 415, 422):
        cls = errors.ValidationError
    else:
        cls = errors.RemoteError
    return cls(f"{_generic_text(status, where)}{said}", **kw)  # type: ignore[arg-type]


def _generic_text(status: int, where: str) -> str:
    if status == 403:
        return (
            f"The signed-in user lacks a privilege for this operation on {where} (HTTP 403). "
            "Ask an administrator to add the needed privilege to the user's security role."
        )
    if status in (404, 410):
        return f"{where} was not found (HTTP {status}). The record, table or field may have been deleted or renamed."
    if status in (409, 412):
        return (
            f"The record changed on the server since it was read, or already exists (HTTP {status}). "
            "The next sync re-reads it and resolves the conflict."
        )
    if status == 413:
        return f"The request to {where} was too large (HTTP 413). Lower the batch size in the connection settings."
    if status == 414:
        return f"The request address was too long for {where} (HTTP 414). Simplify the sync filter."
    if status >= 500:
        return (
            f"{where} had a server error (HTTP {status}). It is usually temporary; the sync retries later. "
            "If it persists, check the organization's service health."
        )
    if status in (400, 422):
        return f"{where} rejected the request as invalid (HTTP {status}). Check the data or the sync filter."
    if status == 405:
        return f"{where} does not allow this operation (HTTP 405). The table may not support it."
    if status == 415:
        return f"{where} did not accept the request format (HTTP 415). This is a bug in crmsync-desktop; please report it."
    return f"{where} answered HTTP {status}. Check the connection settings and try again."


def unreadable_body(url: httpx.URL | str, content_type: str, exc: Exception) -> errors.RemoteError:
    """A 2xx answer whose body is not the JSON (or multipart) the API promises: a proxy page, a truncated body."""
    return errors.RemoteError(
        f"{describe_url(url)} answered with content that could not be read ({content_type or 'no content type'}: "
        f"{exc}). A proxy or captive portal may be in the way; check the organization URL.",
        title="Unreadable response",
    )
