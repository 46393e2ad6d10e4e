"""Fixtures of the end-to-end tests (the rig itself is in ``harness``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import Rig, make_rig


@pytest.fixture
def rig_factory(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """``with rig_factory(seed_records=N) as rig:`` — a fresh seeded pair and store per call."""
    counter = iter(range(1000))

    @contextmanager
    def factory(*, seed_records: int = 600, seed: int = 1) -> Iterator[Rig]:
        with make_rig(tmp_path / f"rig{next(counter)}", seed_records=seed_records, seed=seed) as rig:
            yield rig

    yield factory
