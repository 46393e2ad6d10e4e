"""``$batch`` wire format: parse ``multipart/mixed`` requests (nested change sets, CRLF or LF) and build the
``batchresponse_``/``changesetresponse_`` multipart answer.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from http import HTTPStatus

from . import errors

MAX_OPERATIONS = 1000
_BOUNDARY_RE = re.compile(r'boundary="?([^";]+)"?', re.I)


@dataclass
class BatchRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    content_id: str | None = None


@dataclass
class ChangeSet:
    requests: list[BatchRequest] = field(default_factory=list)


@dataclass
class PartResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    content_id: str | None = None


def boundary_of(content_type: str) -> str:
    m = _BOUNDARY_RE.search(content_type or "")
    if not m or not content_type.lower().startswith("multipart/mixed"):
        raise errors.bad_request("The $batch request must have Content-Type multipart/mixed with a boundary.")
    return m.group(1).strip()


def _split_parts(text: str, boundary: str) -> list[str]:
    delim = "--" + boundary
    chunks = text.split(delim)
    parts = []
    for chunk in chunks[1:]:
        if chunk.startswith("--"):
            break
        chunk = chunk.lstrip(" \t")
        if chunk.startswith("\r\n"):
            chunk = chunk[2:]
        elif chunk.startswith("\n"):
            chunk = chunk[1:]
        if chunk.endswith("\r\n"):
            chunk = chunk[:-2]
        elif chunk.endswith("\n"):
            chunk = chunk[:-1]
        parts.append(chunk)
    return parts


def _headers_and_body(text: str) -> tuple[dict[str, str], str]:
    m = re.search(r"\r?\n\r?\n", text)
    if m is None:
        head, body = text, ""
    else:
        head, body = text[:m.start()], text[m.end():]
    headers: dict[str, str] = {}
    for line in re.split(r"\r?\n", head):
        if ":" in line:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
    return headers, body


def _http_request(part_headers: dict[str, str], text: str) -> BatchRequest:
    text = text.lstrip("\r\n")
    line_end = re.search(r"\r?\n", text)
    request_line = text[:line_end.start()] if line_end else text
    rest = text[line_end.end():] if line_end else ""
    pieces = request_line.split()
    if len(pieces) < 2:
        raise errors.bad_request(f"Invalid request line in $batch: '{request_line}'.")
    headers, body = _headers_and_body(rest) if rest.strip() else ({}, "")
    content_id = part_headers.get("content-id") or headers.get("content-id")
    return BatchRequest(pieces[0].upper(), pieces[1], headers, body.rstrip("\r\n").encode(), content_id)


def parse_batch(content_type: str, body: bytes) -> list[BatchRequest | ChangeSet]:
    boundary = boundary_of(content_type)
    text = body.decode("utf-8")
    items: list[BatchRequest | ChangeSet] = []
    for part in _split_parts(text, boundary):
        headers, inner = _headers_and_body(part)
        ctype = headers.get("content-type", "")
        if ctype.lower().startswith("multipart/mixed"):
            cs = ChangeSet()
            for sub in _split_parts(inner, boundary_of(ctype)):
                sub_headers, sub_body = _headers_and_body(sub)
                cs.requests.append(_http_request(sub_headers, sub_body))
            items.append(cs)
        else:
            items.append(_http_request(headers, inner))
    return items


def count_operations(items: list[BatchRequest | ChangeSet]) -> int:
    return sum(len(i.requests) if isinstance(i, ChangeSet) else 1 for i in items)


def _render_part(r: PartResponse) -> str:
    lines = ["Content-Type: application/http", "Content-Transfer-Encoding: binary"]
    if r.content_id:
        lines.append(f"Content-ID: {r.content_id}")
    lines.append("")
    try:
        phrase = HTTPStatus(r.status).phrase
    except ValueError:
        phrase = ""
    lines.append(f"HTTP/1.1 {r.status} {phrase}")
    lines.extend(f"{k}: {v}" for k, v in r.headers.items())
    lines.append("")
    lines.append(r.body.decode("utf-8"))
    return "\r\n".join(lines)


def render_batch(items: list[PartResponse | list[PartResponse]]) -> tuple[str, bytes]:
    boundary = f"batchresponse_{uuid.uuid4()}"
    out = []
    for item in items:
        out.append(f"--{boundary}\r\n")
        if isinstance(item, list):
            cs = f"changesetresponse_{uuid.uuid4()}"
            out.append(f"Content-Type: multipart/mixed; boundary={cs}\r\n\r\n")
            for r in item:
                out.append(f"--{cs}\r\n{_render_part(r)}\r\n")
            out.append(f"--{cs}--\r\n")
        else:
            out.append(_render_part(item) + "\r\n")
    out.append(f"--{boundary}--\r\n")
    return f"multipart/mixed; boundary={boundary}", "".join(out).encode("utf-8")
