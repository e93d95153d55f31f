"""The source protocol: where documents come from, listed cheaply and read one at a time."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from flightdeck.data.documents import SourceItem

__all__ = ["Source", "ItemFailure", "ItemWarning"]


@dataclass(frozen=True)
class ItemFailure:
    """One item a source could not deliver, and why; the run reports it and goes on with the rest."""

    uri: str
    reason: str
    # The item is known to be gone at the source (HTTP 404/410): downstream treats it as removed. Any other
    # failure keeps the item's stored version, so that a transient error never looks like a deletion.
    gone: bool = False

    def __str__(self) -> str:
        return f"{self.uri}: {self.reason}"


@dataclass(frozen=True)
class ItemWarning:
    """Something a source or parser delivered only in part, or in a degraded way; the item is still ingested.

    Examples: pages of a scanned PDF skipped because tesseract is missing, a page whose text could not be
    extracted, a web page whose main content extraction failed so the whole page was kept, bytes decoded
    with a fallback encoding. Warnings are shown in the run summary and in ``--json``; nothing is lost
    silently.
    """

    uri: str
    message: str

    def __str__(self) -> str:
        return f"{self.uri}: {self.message}"


@runtime_checkable
class Source(Protocol):
    """A provider of source items.

    ``scan()`` lists every item with its content hash (cheap enough to run on every ingest, so that
    unchanged items can be skipped) and records items it had to skip in ``failures``; ``read(item)``
    returns the raw bytes of one listed item. A source that cannot be read at all raises
    :class:`~flightdeck.errors.SourceError` (after its own retries), before anything is written.

    A source may also define ``source_uri(item) -> str``: the URI that citations show for an item
    (``postgresql://host/db/articles#42``, ``s3://bucket/key``); without it, the item's URI is joined to the
    source's root.

    A source that must read bodies to list its items (a bucket's record files) may keep a ``scan_cache``
    attribute, a JSON-able dict: the ingest step sets it from the workspace before ``scan()`` and stores what
    the scan left there, so that the next run's scan can skip what did not change.

    :mod:`flightdeck.testing.source_contract` checks these promises for every source.
    """

    failures: list[ItemFailure]
    # Optional: a source may also keep ``warnings: list[ItemWarning]`` (reset at the start of ``scan()``)
    # for items it delivered in a degraded way; the ingest step reports them with the run.

    def scan(self) -> Iterator[SourceItem]:
        """Yield the items in a stable order; ``failures`` is reset at the start."""
        ...

    def read(self, item: SourceItem) -> bytes:
        """The raw bytes of ``item``."""
        ...
