"""The ``markdown`` chunker: one chunk per heading section, small neighbouring sections merged.

Works on the heading sections the parsers produce, so it is heading-aware for Markdown (ATX headings) and
HTML (``h1``–``h6``) alike. A section that fits the budget is never cut; consecutive small sections
under the same parent heading are merged while the result fits, each keeping its own heading as a line
of the chunk text and the chunk keeping the shared heading path; a section too long for one chunk is
split as the ``recursive`` chunker splits it, with its heading path on every piece.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from flightdeck.data.chunkers.base import ChunkerConfig, chunk_metadata
from flightdeck.data.chunkers.recursive import _HEADING_JOIN, RecursiveChunker, RecursiveConfig
from flightdeck.data.documents import Chunk, Document, Section

if TYPE_CHECKING:
    from flightdeck.data.tokenization import Tokenizer

__all__ = ["MarkdownConfig", "MarkdownChunker"]


class MarkdownConfig(ChunkerConfig):
    """Options of the ``markdown`` chunker.

    ``size`` bounds every chunk as indexed (heading line included when ``include_heading`` is on);
    ``overlap`` applies only inside a section too long for one chunk; ``merge_siblings`` off gives
    exactly one chunk per section that fits.
    """

    include_heading: bool = True
    merge_siblings: bool = True


def _common_prefix(paths: list[tuple[str, ...]]) -> tuple[str, ...]:
    prefix = paths[0]
    for p in paths[1:]:
        n = 0
        while n < min(len(prefix), len(p)) and prefix[n] == p[n]:
            n += 1
        prefix = prefix[:n]
    return prefix


class MarkdownChunker:
    """Heading-aware chunking (see :class:`MarkdownConfig`); ``tokenizer.count(indexed_text) <= size``.

    ``metadata["heading"]`` holds the full heading path shared by the chunk's sections; a chunk of merged
    sections takes the metadata of all of them (``page_start``/``page_end``, the lowest ``ocr_confidence``).
    """

    def __init__(self, config: MarkdownConfig | None = None) -> None:
        self.config = config or MarkdownConfig()
        c = self.config
        # Sections too long for one chunk are cut exactly as the recursive chunker cuts them.
        self._splitter = RecursiveChunker(RecursiveConfig(size=c.size, overlap=c.overlap,
                                                          include_heading=c.include_heading))

    def chunk(self, document: Document, tokenizer: Tokenizer) -> list[Chunk]:
        """Return the chunks of ``document``, numbered ``0..n-1``; sections without text give none."""
        out: list[tuple[tuple[str, ...], tuple[str, ...], str, list[Section]]] = []  # (heading, path, text, sections)
        group: list[Section] = []

        def emit(group: list[Section]) -> None:
            rendered = self._render(group, tokenizer)
            assert rendered is not None  # a group is only formed while it fits
            out.append((*rendered, group))

        for section in (s for s in document.sections if s.text.strip()):
            if tokenizer.count(section.text) > self.config.size:  # too long even alone: cut it, as recursive does
                if group:
                    emit(group)
                    group = []
                heading = self._splitter._heading(section, tokenizer)
                out.extend((heading, section.heading_path, t, [section])
                           for t in self._splitter._section_texts(section.text, heading, tokenizer))
                continue
            if group and self.config.merge_siblings and self._joins(group, section):
                merged = self._render(group + [section], tokenizer)
                if merged is not None:
                    group.append(section)
                    continue
            if group:
                emit(group)
                group = []
            if self._render([section], tokenizer) is not None:
                group = [section]
            else:
                heading = self._splitter._heading(section, tokenizer)
                out.extend((heading, section.heading_path, t, [section])
                           for t in self._splitter._section_texts(section.text, heading, tokenizer))
        if group:
            emit(group)
        chunks: list[Chunk] = []
        for heading, path, text, sections in out:
            chunk = Chunk(document.uri, len(chunks), text, heading, 0, chunk_metadata(document, sections, path))
            chunks.append(replace(chunk, token_count=tokenizer.count(chunk.indexed_text)))
        return chunks

    @staticmethod
    def _joins(group: list[Section], section: Section) -> bool:
        # A sibling of the group's first section, or a section nested under one of its siblings.
        anchor = group[0].heading_path
        return section.heading_path[:max(len(anchor) - 1, 0)] == anchor[:-1]

    def _render(self, group: list[Section], tok: Tokenizer) -> tuple[tuple[str, ...], tuple[str, ...], str] | None:
        """``(heading, shared path, text)`` of ``group`` as one chunk, or None if it does not fit."""
        prefix = _common_prefix([s.heading_path for s in group])
        heading = self._splitter._heading(Section(prefix, ""), tok)
        parts = []
        for s in group:
            rel = s.heading_path[len(prefix):]
            parts.append(f"{_HEADING_JOIN.join(rel)}\n{s.text}" if rel else s.text)
        text = "\n\n".join(parts).strip()
        indexed = f"{_HEADING_JOIN.join(heading)}\n{text}" if heading else text
        return (heading, prefix, text) if tok.count(indexed) <= self.config.size else None
