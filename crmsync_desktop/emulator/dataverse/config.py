"""Run-time knobs of an emulated org: service-protection limits, latency/cost, injected faults.

All three are plain dataclasses persisted (as JSON) in the org file, changeable at run time through
``DataverseOrg`` or the ``/_emulator`` admin endpoints.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass
class ServiceLimits:
    """Dataverse service-protection limits, per user (defaults = the documented Dataverse values)."""

    enabled: bool = True
    requests_per_window: int = 6000
    execution_seconds_per_window: float = 1200.0
    concurrent_requests: int = 52
    window_seconds: float = 300.0
    dop_hint: int = 8  # x-ms-dop-hint (guess: Dataverse returns an environment-specific value)


@dataclass
class Performance:
    """Makes a local org behave like a remote one: fixed latency per request plus a cost per record."""

    latency_ms: float = 0.0
    cost_per_record_ms: float = 0.0


@dataclass
class Faults:
    """Injected failures for resilience tests. Rates are probabilities in [0, 1] per data request."""

    error_rate: float = 0.0  # answer 5xx
    error_status: int = 503  # 500 -> 0x80040216 "unexpected error"; 502/503/504 -> 0x8004A001 "busy"
    drop_rate: float = 0.0  # close the connection without a response
    added_latency_ms: float = 0.0
    throttle_burst: int = 0  # the next N data requests get 429 (counts down)
    throttle_retry_after_s: int = 5
    offline: bool = False  # every data request: connection closed without a response
    race_rate: float = 0.0  # conditional writes (If-Match with an etag) lose a race -> the row changes first
    seed: int | None = None  # seed of the fault dice (None = nondeterministic)


def update_dataclass(obj: Any, values: dict[str, Any]) -> None:
    """Set known fields from ``values``; unknown names are an error (typos must not pass silently)."""
    names = {f.name: f for f in fields(obj)}
    for k, v in values.items():
        if k not in names:
            raise ValueError(f"unknown setting {k!r} for {type(obj).__name__}")
        current = getattr(obj, k)
        if isinstance(current, bool) or names[k].type in ("bool",):
            v = bool(v)
        elif isinstance(current, int) and not isinstance(current, bool) and v is not None and names[k].type == "int":
            v = int(v)
        elif isinstance(current, float) and v is not None:
            v = float(v)
        setattr(obj, k, v)


def as_dict(obj: Any) -> dict[str, Any]:
    return asdict(obj)
