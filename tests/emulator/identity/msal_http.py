"""The httpx adapter MSAL gets as ``http_client`` (stack-recipes §6), trusting only the emulator CA."""

from __future__ import annotations

import ssl
from typing import Any

import httpx


class MsalHttpxClient:
    def __init__(self, context: ssl.SSLContext, authority_origin: str | None = None) -> None:
        self.client = httpx.Client(verify=context, timeout=10.0)
        self.calls: list[tuple[str, str]] = []
        self._origin = authority_origin

    def _url(self, url: str) -> str:
        """MSAL drops the port for user-realm discovery (``https://{instance}/common/userrealm``): put it back."""
        if self._origin:
            portless = "https://" + httpx.URL(self._origin).host + "/"
            if url.startswith(portless):
                return self._origin.rstrip("/") + "/" + url[len(portless) :]
        return url

    @staticmethod
    def _kw(kw: dict[str, Any]) -> dict[str, Any]:
        out = {"timeout": kw.pop("timeout")} if "timeout" in kw else {}
        for k in ("verify", "proxies", "allow_redirects"):
            kw.pop(k, None)
        return out

    def get(self, url: str, params: Any = None, headers: Any = None, **kw: Any) -> httpx.Response:
        self.calls.append(("GET", url))
        return self.client.get(self._url(url), params=params, headers=headers, **self._kw(kw))

    def post(
        self, url: str, params: Any = None, data: Any = None, headers: Any = None, **kw: Any
    ) -> httpx.Response:
        self.calls.append(("POST", url))
        if isinstance(data, dict):
            # MSAL passes the client assertion as bytes; httpx would send str(b"...") (the "b'eyJ..." bug).
            data = {k: v.decode() if isinstance(v, bytes) else v for k, v in data.items()}
        body = (
            {"content": data}
            if isinstance(data, (str, bytes))
            else ({"data": data} if data is not None else {})
        )
        return self.client.post(self._url(url), params=params, headers=headers, **body, **self._kw(kw))

    def close(self) -> None:
        self.client.close()
