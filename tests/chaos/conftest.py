"""Chaos tests run only when selected (``pytest -m chaos``): a plain ``pytest`` skips them too."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "chaos" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="chaos soak: run with pytest -m chaos")
    for item in items:
        if item.get_closest_marker("chaos"):
            item.add_marker(skip)
