"""Logging: a rotating file in the log folder, an in-memory ring buffer for the Logs screen, and redaction.

The redaction filter sits on every handler this module installs, so a password, client secret,
bearer token or ``Authorization`` header can never reach a log line, whoever logs it and however
(message text, ``%`` arguments, exception text). Nothing is configured at import time.
"""

from __future__ import annotations

import collections
import logging
import logging.handlers
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT_LOGGER = "crmsync_desktop"
LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
LOG_FILE_MAX_BYTES = 5 * 1024 * 1024
LOG_FILE_BACKUPS = 5
RING_BUFFER_LINES = 5000
REDACTED = "***"

# Each pattern keeps its first group and replaces the secret that follows it.
_SECRET_PATTERNS: tuple[re.Pattern[str], ...] = (
    # Authorization: Bearer xxx / Basic xxx (header form, dict repr form, any casing)
    re.compile(r"""(?i)(authorization['"]?\s*[:=]\s*['"]?)(?:bearer|basic|negotiate)?\s*[^\s'",}]+"""),
    re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9\-._~+/]+=*"),
    re.compile(r"(?i)(\bbasic\s+)[A-Za-z0-9+/]{8,}=*"),
    # key=value / "key": "value" for secret-ish keys (form bodies, JSON, query strings, repr of dicts)
    re.compile(
        r"""(?i)(["']?\b(?:password|passwd|pwd|client_secret|secret|access_token|refresh_token|id_token|"""
        r"""client_assertion|device_code|api_key|apikey|token|passphrase)\b["']?\s*[:=]\s*["']?)[^\s"'&,;}]+"""
    ),
    # A PEM private key block (a certificate's key), encrypted or not, even cut off at the end
    re.compile(r"(-----BEGIN [A-Z ]*PRIVATE KEY-----)[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)"),
    # A bare JWT anywhere (three base64url segments, header starts with eyJ)
    re.compile(r"()\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"),
)


def redact(text: str, known_secrets: Iterable[str] = ()) -> str:
    """Return ``text`` with every secret-looking value and every ``known_secrets`` value replaced."""
    for secret in known_secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
    return text


class RedactingFilter(logging.Filter):
    """Rewrites each record's final text so that no secret survives.

    Besides the patterns, it redacts every value registered with ``register_secret`` (the
    credential store registers each secret it reads or writes), which catches secrets with no
    telltale key next to them.
    """

    def __init__(self) -> None:
        super().__init__()
        self._known: set[str] = set()
        self._lock = threading.Lock()

    def register_secret(self, value: str) -> None:
        if value and len(value) >= 4:
            with self._lock:
                self._known.add(value)

    def filter(self, record: logging.LogRecord) -> bool:
        with self._lock:
            known = tuple(self._known)
        message = redact(record.getMessage(), known)
        record.msg, record.args = message, None
        if record.exc_info and record.exc_info[1] is not None:
            # Format the traceback now, redacted, so handlers never format the raw exception.
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info), known)
            record.exc_info = None
        if record.stack_info:
            record.stack_info = redact(record.stack_info, known)
        return True


REDACTION = RedactingFilter()


def register_secret(value: str) -> None:
    """Make sure ``value`` never appears in any log line from now on."""
    REDACTION.register_secret(value)


@dataclass(frozen=True, slots=True)
class LogLine:
    """One formatted, redacted log line as the Logs screen shows it."""

    seq: int
    at: datetime
    level: str
    logger: str
    message: str


class RingBufferHandler(logging.Handler):
    """Keeps the last ``capacity`` lines in memory for the Logs screen and crash reports."""

    def __init__(self, capacity: int = RING_BUFFER_LINES) -> None:
        super().__init__()
        self._lines: collections.deque[LogLine] = collections.deque(maxlen=capacity)
        self._seq = 0
        self._listeners: list[Callable[[LogLine], None]] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if record.exc_text:
            message = f"{message}\n{record.exc_text}"
        with self.lock:  # type: ignore[union-attr]
            self._seq += 1
            line = LogLine(
                seq=self._seq,
                at=datetime.fromtimestamp(record.created, UTC),
                level=record.levelname,
                logger=record.name,
                message=message,
            )
            self._lines.append(line)
            listeners = list(self._listeners)
        for listener in listeners:
            listener(line)

    def lines(self, after_seq: int = 0) -> list[LogLine]:
        with self.lock:  # type: ignore[union-attr]
            return [line for line in self._lines if line.seq > after_seq]

    def subscribe(self, listener: Callable[[LogLine], None]) -> Callable[[], None]:
        """Call ``listener`` for every new line (from the logging thread); returns an unsubscribe."""
        with self.lock:  # type: ignore[union-attr]
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self.lock:  # type: ignore[union-attr]
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe


@dataclass(frozen=True, slots=True)
class LoggingSetup:
    file_handler: logging.Handler
    ring: RingBufferHandler

    def close(self) -> None:
        root = logging.getLogger()
        for handler in (self.file_handler, self.ring):
            root.removeHandler(handler)
            handler.close()


def setup_logging(log_file: Path, *, level: int = logging.INFO, console: bool = False) -> LoggingSetup:
    """Install the rotating file, the ring buffer (and optionally stderr) on the root logger.

    The root logger, so that warnings from httpx, MSAL or SQLAlchemy reach the same file and Logs
    screen; the app's own loggers live under ``crmsync_desktop`` and use ``level``.
    """
    log_file.parent.mkdir(parents=True, exist_ok=True)
    formatter = logging.Formatter(LOG_FORMAT)
    file_handler = logging.handlers.RotatingFileHandler(
        log_file, maxBytes=LOG_FILE_MAX_BYTES, backupCount=LOG_FILE_BACKUPS, encoding="utf-8"
    )
    ring = RingBufferHandler()
    handlers: list[logging.Handler] = [file_handler, ring]
    if console:
        handlers.append(logging.StreamHandler())
    logging.getLogger(ROOT_LOGGER).setLevel(level)
    root = logging.getLogger()
    root.setLevel(min(level, logging.WARNING))
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(REDACTION)
        root.addHandler(handler)
    # Third-party HTTP loggers print URLs and headers at DEBUG; keep them quiet and redacted.
    for name in ("httpx", "httpcore", "msal", "urllib3"):
        logging.getLogger(name).setLevel(logging.WARNING)
    return LoggingSetup(file_handler=file_handler, ring=ring)
