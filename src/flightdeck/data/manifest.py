"""What the sources hold now: the scan that starts every ingest.

:func:`scan_sources` asks each configured source (a :class:`SourceBinding`) for its items and returns a
:class:`Manifest`: one entry per document (id, content hash, media type, source URI), the items to read, the
failures and warnings the sources reported, and the per-document settings that belong in its pipeline hash.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from flightdeck.core import stable_hash
from flightdeck.data.documents import SourceItem
from flightdeck.data.sources.base import Source
from flightdeck.workspace import Workspace

__all__ = ["SourceBinding", "Manifest", "ManifestEntry", "scan_sources", "SCAN_CACHE_STATE"]

# What a source learnt from the bodies it read to list its items (its ``scan_cache``), per source.
SCAN_CACHE_STATE = "ingest/scan_cache/"

# (document id, content hash, media type, source uri)
ManifestEntry = tuple[str, str, str, str]


@dataclass
class SourceBinding:
    """A configured source and how its items are named in the workspace."""

    label: str  # prefix of document ids, e.g. "corpus" -> "corpus/tutorial/venv.html"
    base_uri: str  # file URI of the source root, for citations
    source: Source

    def document_id(self, item: SourceItem) -> str:
        return f"{self.label}/{item.uri}"

    def source_uri(self, item: SourceItem) -> str:
        """Where a citation points: the source's own URI for the item when it has one."""
        own = getattr(self.source, "source_uri", None)
        if callable(own):
            return str(own(item))
        if self.base_uri.endswith(".jsonl"):
            return f"{self.base_uri}#{item.uri.split('#', 1)[-1]}" if "#" in item.uri else self.base_uri
        return f"{self.base_uri.rstrip('/')}/{item.uri}"


@dataclass
class Manifest:
    """What the sources hold now: (document id, content hash, media type, source uri), sorted.

    ``settings`` maps a document id to the hash of what its source hands the parser besides the bytes: the
    item's metadata, which holds the source's parser settings (OCR mode, page and zip limits, record field
    names). It is part of the document's pipeline hash, so changing a source's settings re-processes that
    source's documents, and only those its settings reach.
    """

    entries: list[ManifestEntry]
    items: dict[str, tuple[SourceBinding, SourceItem]] = field(default_factory=dict)
    failures: list[dict[str, str]] = field(default_factory=list)
    # items the sources delivered in a degraded way ({"uri", "message"}): reported, not part of the digest
    warnings: list[dict[str, str]] = field(default_factory=list)
    unreadable: set[str] = field(default_factory=set)  # failed this scan but not gone: keep what is stored
    settings: dict[str, str] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        return stable_hash([self.entries, sorted(self.settings.items())])

    def source_sizes(self) -> dict[str, int]:
        """How many items each source (by label) listed."""
        sizes: dict[str, int] = {}
        for binding, _ in self.items.values():
            sizes[binding.label] = sizes.get(binding.label, 0) + 1
        return sizes


def scan_sources(bindings: list[SourceBinding], ws: Workspace) -> Manifest:
    """List every item of every source; a source that keeps a ``scan_cache`` gets its last one back first."""
    m = Manifest([])
    for binding in bindings:
        cache_key = SCAN_CACHE_STATE + binding.label
        cached = ws.get_state(cache_key) if hasattr(binding.source, "scan_cache") else None
        if cached is not None:
            binding.source.scan_cache = json.loads(cached)
        for item in binding.source.scan():
            doc_id = binding.document_id(item)
            m.entries.append((doc_id, item.content_hash, item.media_type, binding.source_uri(item)))
            m.items[doc_id] = (binding, item)
            if item.metadata:
                m.settings[doc_id] = stable_hash(item.metadata)
        for failure in getattr(binding.source, "failures", []):
            m.failures.append({"uri": f"{binding.label}/{failure.uri}", "reason": failure.reason})
            if not getattr(failure, "gone", False):
                m.unreadable.add(f"{binding.label}/{failure.uri}")
        for warning in getattr(binding.source, "warnings", None) or []:
            m.warnings.append({"uri": f"{binding.label}/{warning.uri}", "message": warning.message})
        if hasattr(binding.source, "scan_cache"):
            # Saved now, not with the documents: it only says what the source's bytes held, true whatever the
            # run does next, and a skipped step must not lose it.
            fresh = json.dumps(binding.source.scan_cache, sort_keys=True)
            if fresh != (cached or "{}"):
                with ws.engine.begin() as conn:
                    ws.set_state(conn, cache_key, fresh)
    m.entries.sort()
    return m
