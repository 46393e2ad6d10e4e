"""What the Offline Transactions tab needs from the upload engine: ``TransactionQueue``.

The view is built against this protocol, not against ``UploadService``, so it can be hosted over
the real service, a fake in tests, or the benchmark's store. ``status=None`` lists every status
(the *All* tab). :class:`AllStatusesQueue` adapts a queue whose ``list`` needs a status (the
store's keyset query runs per status) by merging the per-status keyset pages, which keeps paging
cheap whatever the queue holds.
"""

from __future__ import annotations

import dataclasses
import heapq
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Protocol

from crmsync_desktop.domain import TransactionStatus

if TYPE_CHECKING:  # plain values only; views and ui never import the store at run time
    from crmsync_desktop.store.values import OfflineTransaction, TransactionPage

__all__ = ["AllStatusesQueue", "PerStatusQueue", "TransactionQueue"]


class TransactionQueue(Protocol):
    """The Offline Transactions queue of one profile (all methods run on the event loop)."""

    async def list(
        self,
        status: TransactionStatus | None,
        after_id: int | None,
        limit: int,
        newest_first: bool,
    ) -> TransactionPage:
        """One keyset page of a status tab (``None``: every status); pass ``next_after_id`` on."""
        ...

    async def counts(self) -> Mapping[TransactionStatus, int]:
        """Transactions per status (every status present)."""
        ...

    async def set_pending(self, ids: Iterable[int]) -> int:
        """Set to Pending (Error and Archived rows are delivered again); returns how many changed."""
        ...

    async def archive(self, ids: Iterable[int]) -> int:
        """Set to Archived (Pending and Error rows will never be delivered); returns how many changed."""
        ...

    async def retry_errors(self) -> int:
        """Set all to Pending: every Error transaction is delivered again; returns how many."""
        ...


class PerStatusQueue(Protocol):
    """A queue whose ``list`` needs one status (``UploadService`` has this shape)."""

    async def list(
        self, status: TransactionStatus, after_id: int | None = None, limit: int = 100, *, newest_first: bool = True
    ) -> TransactionPage: ...

    async def counts(self) -> Mapping[TransactionStatus, int]: ...

    async def set_pending(self, ids: Iterable[int]) -> int: ...

    async def archive(self, ids: Iterable[int]) -> int: ...

    async def retry_errors(self) -> int: ...


class AllStatusesQueue:
    """A ``TransactionQueue`` over a ``PerStatusQueue``: the *All* tab merges one page per status.

    Each status is asked for ``limit`` rows past ``after_id`` (keyset: ids are unique across
    statuses), the pages are merged in id order and cut at ``limit``; the last id shown is the
    next key. Four indexed queries per page, never an OFFSET scan.
    """

    def __init__(self, inner: PerStatusQueue) -> None:
        self.inner = inner

    async def list(
        self,
        status: TransactionStatus | None,
        after_id: int | None,
        limit: int,
        newest_first: bool,
    ) -> TransactionPage:
        if status is not None:
            return await self.inner.list(status, after_id, limit, newest_first=newest_first)
        pages = [await self.inner.list(s, after_id, limit, newest_first=newest_first) for s in TransactionStatus]
        merged: list[OfflineTransaction] = list(
            heapq.merge(*(p.items for p in pages), key=lambda t: -t.id if newest_first else t.id)
        )
        more = len(merged) > limit or any(p.next_after_id is not None for p in pages)
        items = tuple(merged[:limit])
        next_after_id = items[-1].id if more and items else None
        return dataclasses.replace(pages[0], items=items, next_after_id=next_after_id, counts={})

    async def counts(self) -> Mapping[TransactionStatus, int]:
        return await self.inner.counts()

    async def set_pending(self, ids: Iterable[int]) -> int:
        return await self.inner.set_pending(list(ids))

    async def archive(self, ids: Iterable[int]) -> int:
        return await self.inner.archive(list(ids))

    async def retry_errors(self) -> int:
        return await self.inner.retry_errors()
