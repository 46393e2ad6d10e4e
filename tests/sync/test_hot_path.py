"""The download hot path's helpers: one-page read-ahead, and the text-built Resco ``UpdateMultiple`` body."""

from __future__ import annotations

import asyncio
import contextlib
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator

import pytest

from crmsync_desktop.sync.connectors.resco import wire
from crmsync_desktop.sync.connectors.types import LookupValue
from crmsync_desktop.sync.download import read_ahead

pytestmark = pytest.mark.asyncio


class Source:
    def __init__(self, n: int, fail_at: int | None = None) -> None:
        self.n, self.fail_at = n, fail_at
        self.started: list[int] = []
        self.closed = False

    async def items(self) -> AsyncIterator[int]:
        try:
            for i in range(self.n):
                self.started.append(i)
                await asyncio.sleep(0.01)
                if i == self.fail_at:
                    raise ValueError(f"read {i} failed")
                yield i
        finally:
            self.closed = True


async def test_yields_everything_in_order_while_fetching_the_next_item_ahead() -> None:
    src = Source(4)
    seen = []
    async for item in read_ahead(src.items()):
        await asyncio.sleep(0.02)  # the caller's work on this item (the client write)
        seen.append(item)
        assert src.started[-1] == min(item + 1, 3)  # the next read already started
    assert seen == [0, 1, 2, 3] and src.closed


async def test_a_read_error_surfaces_where_that_item_would_be_consumed() -> None:
    src = Source(5, fail_at=2)
    seen = []
    with pytest.raises(ValueError, match="read 2 failed"):
        async for item in read_ahead(src.items()):
            seen.append(item)
    assert seen == [0, 1]


async def test_stopping_early_cancels_the_read_ahead_and_closes_the_source() -> None:
    src = Source(10)
    pages = read_ahead(src.items())
    async with contextlib.aclosing(pages):
        async for item in pages:
            if item == 1:
                break
    assert src.closed and len(src.started) <= 3


def _element_tree_body(entity: str, items: list[tuple[str, dict[str, object]]], primary_id: str) -> bytes:
    """The previous ElementTree implementation, kept here as the reference for the text writer."""
    root = ET.Element("EntityCollection", {"EntityName": entity})
    for record_id, record in items:
        element = ET.SubElement(root, "Entity", {"LogicalName": entity, "Id": record_id})
        for name, value in record.items():
            if name == primary_id:
                continue
            if value is None:
                ET.SubElement(element, "Attribute", {"Name": name, "Null": "true"})
            elif isinstance(value, LookupValue):
                ET.SubElement(element, "Attribute", {"Name": name, "Target": value.entity}).text = value.id
            else:
                ET.SubElement(element, "Attribute", {"Name": name}).text = wire._value_text(value)  # type: ignore[arg-type]
    return wire.to_text(root)


async def test_update_multiple_body_is_byte_identical_to_the_element_tree_one() -> None:
    items: list[tuple[str, dict[str, object]]] = [
        ("a1", {"id": "a1", "name": 'A & <B> "q" \n\t\r x', "n": 3, "f": 1.5, "b": True, "z": None, "e": "",
                "l": LookupValue("systemuser", "u&1"), "u": "žluťoučký 🚀", "d": "2026-01-02T03:04:05Z"}),
        ("a2", {}),
        ("a3", {"id": "a3"}),
    ]
    assert wire.update_multiple_request("acc&t", items, "id") == _element_tree_body("acc&t", items, "id")
