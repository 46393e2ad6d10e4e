"""``$batch`` requests written and parsed by hand (docs §6.6): multipart/mixed, CRLF, one part per operation.

Only independent operations are sent (no change sets), with ``Prefer: odata.continue-on-error`` so
each part reports its own status. Responses are parsed tolerating LF or CRLF and nested change sets.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

CRLF = "\r\n"
MAX_BATCH_OPERATIONS = 1000


@dataclass(frozen=True, slots=True)
class BatchOperation:
    method: str
    url: str  # path-absolute, e.g. /api/data/v9.2/accounts(<id>)
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BatchPartResponse:
    status: int
    headers: dict[str, str]
    body: str

    def json(self) -> Any:
        return json.loads(self.body) if self.body.strip() else None


def build_batch(operations: Sequence[BatchOperation], boundary: str | None = None) -> tuple[str, bytes]:
    """``(content_type, body)`` for a ``POST $batch``."""
    if not operations or len(operations) > MAX_BATCH_OPERATIONS:
        raise ValueError(f"a batch holds 1..{MAX_BATCH_OPERATIONS} operations, not {len(operations)}")
    boundary = boundary or f"batch_{uuid.uuid4().hex}"
    lines: list[str] = []
    for op in operations:
        lines += [f"--{boundary}", "Content-Type: application/http", "Content-Transfer-Encoding: binary", ""]
        lines.append(f"{op.method} {op.url} HTTP/1.1")
        headers = dict(op.headers)
        if op.body is not None:
            headers.setdefault("Content-Type", "application/json; type=entry")
        lines += [f"{k}: {v}" for k, v in headers.items()]
        lines.append("")
        lines.append(json.dumps(op.body, separators=(",", ":")) if op.body is not None else "")
    lines.append(f"--{boundary}--")
    lines.append("")
    return f'multipart/mixed; boundary="{boundary}"', CRLF.join(lines).encode("utf-8")


_BOUNDARY = re.compile(r'boundary="?([^";]+)"?', re.IGNORECASE)
_STATUS = re.compile(r"^HTTP/\d(?:\.\d)?\s+(\d{3})")


def boundary_of(content_type: str) -> str:
    m = _BOUNDARY.search(content_type or "")
    if not m:
        raise ValueError(f"no multipart boundary in Content-Type {content_type!r}")
    return m.group(1).strip()


def parse_batch_response(content_type: str, body: bytes) -> list[BatchPartResponse]:
    """The inner responses in order (change-set responses flattened in place)."""
    text = body.decode("utf-8").replace("\r\n", "\n")
    return _parse_multipart(boundary_of(content_type), text)


def _parse_multipart(boundary: str, text: str) -> list[BatchPartResponse]:
    delimiter = f"--{boundary}"
    out: list[BatchPartResponse] = []
    chunks = text.split(delimiter)
    for chunk in chunks[1:]:
        if chunk.startswith("--"):
            break  # closing delimiter
        part = chunk.lstrip("\n")
        mime_head, _, payload = part.partition("\n\n")
        mime = _headers(mime_head.split("\n"))
        ctype = mime.get("content-type", "")
        if ctype.lower().startswith("multipart/"):
            out += _parse_multipart(boundary_of(ctype), payload)
            continue
        out.append(_parse_http(payload))
    return out


def _parse_http(payload: str) -> BatchPartResponse:
    head, _, body = payload.partition("\n\n")
    lines = head.split("\n")
    m = _STATUS.match(lines[0].strip()) if lines else None
    if not m:
        raise ValueError(f"batch part does not start with an HTTP status line: {lines[0][:80] if lines else ''!r}")
    return BatchPartResponse(status=int(m.group(1)), headers=_headers(lines[1:]), body=body.strip())


def _headers(lines: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in lines:
        name, sep, value = line.partition(":")
        if sep and name.strip():
            out[name.strip().lower()] = value.strip()
    return out
