"""How the CLI talks back: one JSON document with ``--json``, readable text otherwise, a progress line on a terminal."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from crmsync_desktop.sync.events import Event, LogEmitted, Progress


def emit(as_json: bool, payload: dict[str, Any], text: str, *, error: bool = False) -> None:
    if as_json:
        print(json.dumps(payload, indent=2, sort_keys=True, default=str))
    elif text:
        print(text, file=sys.stderr if error else sys.stdout)


class TerminalProgress:
    """Draws engine progress on one stderr line when it is a terminal (never in --json mode)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self._last = 0.0
        self._width = 0

    def __call__(self, event: Event) -> None:
        if not self.enabled:
            return
        if isinstance(event, Progress):
            now = time.monotonic()
            if now - self._last < 0.1:
                return
            self._last = now
            total = f"/{event.total}" if event.total is not None else ""
            rate = f" {event.records_per_second:,.0f}/s" if event.records_per_second else ""
            eta = f" ETA {event.eta_seconds:,.0f}s" if event.eta_seconds is not None else ""
            bar = ""
            if event.total:
                filled = int(30 * min(1.0, event.done / event.total))
                bar = "[" + "#" * filled + "." * (30 - filled) + "] "
            self._write(f"{bar}{event.entity} {event.phase}: {event.done}{total}{rate}{eta}")
        elif isinstance(event, LogEmitted) and event.level in ("WARNING", "ERROR"):
            self.clear()
            print(f"{event.level}: {event.entity + ': ' if event.entity else ''}{event.message}", file=sys.stderr)

    def _write(self, text: str) -> None:
        pad = max(0, self._width - len(text))
        sys.stderr.write("\r" + text + " " * pad)
        sys.stderr.flush()
        self._width = len(text)

    def clear(self) -> None:
        if self.enabled and self._width:
            sys.stderr.write("\r" + " " * self._width + "\r")
            sys.stderr.flush()
            self._width = 0
