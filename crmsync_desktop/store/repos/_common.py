"""Helpers shared by the repository modules: profile look-up by name and batching."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from crmsync_desktop.errors import ProfileNotFoundError
from crmsync_desktop.store.models import ConnectionProfileModel

T = TypeVar("T")

# Ids per "IN (...)" list: far below SQLite's bound-parameter limit, large enough to be fast.
IN_CHUNK = 500
# Rows per executemany batch: keeps memory flat when millions of rows are written at once.
WRITE_CHUNK = 10_000


def profile_not_found(name: str) -> ProfileNotFoundError:
    return ProfileNotFoundError(
        f"There is no connection profile named {name!r}. Pick one of the existing profiles, "
        "or create or import it first.",
        profile=name,
    )


def profile_id(session: Session, name: str) -> int:
    """The id of the profile named ``name``; raises ``ProfileNotFoundError``."""
    found = session.execute(
        select(ConnectionProfileModel.id).where(ConnectionProfileModel.name == name)
    ).scalar_one_or_none()
    if found is None:
        raise profile_not_found(name)
    return found


def chunked(items: Iterable[T], size: int) -> Iterator[Sequence[T]]:
    """Yield lists of at most ``size`` items."""
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch
