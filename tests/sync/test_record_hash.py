"""Content hashes and per-field digests: fast, and byte for byte what they always were.

Stored hashes (``record_state.content_hash``, ``upload_baseline``) were computed as the blake2b-128
of ``json.dumps([[name, canonical value], ...], separators=(",", ":"), ensure_ascii=False,
default=str)``. ``records`` now builds that text without a JSON encoder per record; a different
spelling would make every stored hash mismatch and rewrite every record on the next sync, so the
results are pinned here (golden values) and compared with that definition over many values.
"""

from __future__ import annotations

import hashlib
import json
import random
from datetime import datetime
from decimal import Decimal
from typing import Any

from crmsync_desktop.sync import records
from crmsync_desktop.sync.connectors.types import LookupValue
from crmsync_desktop.sync.records import FieldPlan, content_hash, record_digests, value_digest

RECORD: dict[str, Any] = {
    "accountid": "0b5e5a4e-1c9a-4e8e-9a51-3f0f6a1d2c11",
    "name": 'Contoso \u00e9 "Ltd" <&>',
    "revenue": 1234.5,
    "numberofemployees": 42,
    "creditonhold": False,
    "modifiedon": "2025-03-04T10:20:30.123+02:00",
    "birthdate": "2025-03-04T00:00:00Z",
    "ownerid": LookupValue("systemuser", "AB12CD34-0000-4000-8000-000000000001"),
    "empty": None,
    "money": 10.0,
    "tiny": 0.1234567,
    "emoji": "\U0001f600\t\n",
}
GOLDEN_HASH = "aa5d1b2fa576f6c92a0be628bc6f33d4"  # computed with the json.dumps implementation
GOLDEN_DIGESTS = {
    "accountid": "5ff292c3f756", "name": "290a31b8b5c4", "revenue": "2edbf1c6bd0d", "numberofemployees": "bc1c29c111ad",
    "creditonhold": "b2a86f937cbc", "modifiedon": "4712f669ae55", "birthdate": "f8d8d87ff69f", "ownerid": "f8567c31fb58",
    "empty": "7ebb3c7c2a87", "money": "7570ddba0820", "tiny": "cd9a6b1771e3", "emoji": "cacdc9c6b7c2",
}


def reference_hash(record: dict[str, Any], fields: Any) -> str:
    """The definition the stored hashes were made with."""
    items = [[name, records._canonical(record.get(name))] for name in sorted(set(fields)) if record.get(name) is not None]
    blob = json.dumps(items, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.blake2b(blob.encode("utf-8"), digest_size=16).hexdigest()


def test_golden_values_do_not_change() -> None:
    assert content_hash(RECORD, tuple(RECORD)) == GOLDEN_HASH
    assert content_hash(RECORD, list(RECORD)) == GOLDEN_HASH  # any iterable of names
    assert {k: value_digest(v) for k, v in RECORD.items()} == GOLDEN_DIGESTS
    plan = FieldPlan("account", "accountid", tuple(RECORD))
    assert record_digests(RECORD, plan) == {k: v for k, v in GOLDEN_DIGESTS.items() if k not in ("accountid", "empty")}


def _value(rng: random.Random) -> Any:
    alphabet = 'abcXYZ09 "\\/<>&\u00e9\u4e2d\U0001f600\t\n\r\x00\x1f\u2028-:T+Z.'
    choices = [
        lambda: None, lambda: True, lambda: False, lambda: 1, lambda: 1.0,
        lambda: rng.randrange(-10**6, 10**6), lambda: rng.choice([2**53, 2**53 + 1, -(2**53) - 1, 10**20, rng.getrandbits(70)]),
        lambda: rng.uniform(-1e6, 1e6), lambda: round(rng.uniform(-100, 100), rng.randrange(0, 9)),
        lambda: rng.choice([float("nan"), float("inf"), -float("inf"), -0.0, 1e300, 1e-7, 5e-7, 2.5e-6, 1.0000005, 123456789.9999999]),
        lambda: Decimal(str(round(rng.uniform(-1e4, 1e4), 4))),
        lambda: "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 12))),
        lambda: rng.choice(["2025-01-02", "2025-01-02T03:04:05Z", "2025-01-02T00:00:00+00:00", "2025-01-02T23:30:00-05:00",
                            "2025-13-45T10:00:00Z", "2025-01-02T03:04", "2025-01-02T03:04:05.123456789Z", "2024-02-29T12:00:00+0530",
                            "2025-01-02T03:04:05Z trailing", "T"]),
        lambda: LookupValue(rng.choice(["account", "systemuser", "t\u00e9am"]), rng.choice(["ABC-def", "abc-def", "0000"])),
        lambda: rng.choice([[1, 2], {"a": 1}, (1, "x")]),
        lambda: datetime(2025, 1, 2, 3, 4, 5),
    ]
    return rng.choice(choices)()


def test_same_text_as_the_json_definition_for_every_kind_of_value() -> None:
    rng = random.Random(7)
    for _ in range(5_000):
        record = {f"f{j}": _value(rng) for j in range(rng.randrange(0, 8))}
        fields = tuple(rng.sample([*record, "missing", "f1", "f1"], k=rng.randrange(0, len(record) + 3)))
        assert content_hash(record, fields) == reference_hash(record, fields), (record, fields)
        for name, v in record.items():
            expected = reference_hash({"v": v}, ("v",))[:12]
            assert value_digest(v) == expected, v
            assert value_digest(v) == expected, v  # the second time from the digest cache
            if v is not None:
                plan = FieldPlan("e", "id", ("id", name))
                assert record_digests({"id": "x", name: v}, plan) == {name: expected}


def test_equal_keys_of_different_types_keep_their_own_digests() -> None:
    # 1, 1.0 and True are one dict key; the cache must not hand one's digest to another.
    for first in (True, 1, 1.0, 0, False, 0.0):
        records._DIGESTS.clear()
        value_digest(first)
        for v in (True, 1, 1.0, 0, False, 0.0, "1", "True"):
            assert value_digest(v) == reference_hash({"v": v}, ("v",))[:12], (first, v)
