"""Markdown: ATX headings (``#`` to ``######``) split the text into sections with heading paths.

Only the structure is read; the body keeps its Markdown syntax, which embedders and keyword search
handle well and which keeps code blocks intact. Setext headings (underlined with ``===``/``---``) are
not recognised: ``---`` is far more often a rule or front-matter fence than a heading underline.
"""

from __future__ import annotations

import re

from flightdeck.data.documents import Document, Section, SourceItem
from flightdeck.data.parsers.decoding import decode_text_noted
from flightdeck.data.parsers.text import title_from_uri

__all__ = ["parse_markdown", "markdown_sections"]

# The heading text is taken whole and its trailing blanks and closing hashes are stripped in Python: the
# obvious patterns (a lazy ``(.*?)[ \t]*$``, or ``[ \t]+#+$`` searched) backtrack quadratically over a long
# run of blanks, which took minutes on a single 100 kB line.
_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*))?$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


def markdown_sections(text: str, default_title: str) -> tuple[str, tuple[Section, ...]]:
    """Split Markdown ``text`` into ``(title, sections)``.

    The title is the first H1, else ``default_title``. A section's heading path is the chain of open
    headings; when that chain does not start at an H1 (text before any heading, or a document without
    H1) the title is put first, so every path says which document it belongs to.
    """
    headings: list[tuple[int, str]] = []  # (level, text) of the open headings
    sections: list[tuple[tuple[tuple[int, str], ...], list[str]]] = [((), [])]
    fence: str | None = None
    for line in text.splitlines():
        if fence is not None:
            # A fence closes with the same character, at least as long, and nothing after it.
            stripped = line.strip()
            if stripped.startswith(fence) and set(stripped) == {fence[0]}:
                fence = None
            sections[-1][1].append(line)
            continue
        if m := _FENCE.match(line):
            fence = m.group(1)
            sections[-1][1].append(line)
            continue
        if m := _HEADING.match(line):
            level = len(m.group(1))
            heading = _heading_text(m.group(2) or "")
            while headings and headings[-1][0] >= level:
                headings.pop()
            headings.append((level, heading))
            sections.append((tuple(headings), []))
            continue
        sections[-1][1].append(line)

    title = next((h for path in (s[0] for s in sections) for lvl, h in path if lvl == 1 and h), default_title)
    out: list[Section] = []
    for path, lines in sections:
        body = _trim_blank_lines(lines)
        if not body.strip():
            continue
        names = tuple(h for _, h in path if h)
        if not path or path[0][0] != 1:
            names = (title, *names)
        out.append(Section(names, body))
    return title, tuple(out)


def _heading_text(raw: str) -> str:
    """The text of an ATX heading line after its hashes: without the optional closing ``#`` sequence,
    which counts only after a blank (``# C#`` keeps its ``#``) or as the whole text."""
    text = raw.rstrip(" \t")
    core = text.rstrip("#")
    if core != text and (not core or core[-1] in " \t"):
        text = core
    return text.strip()


def _trim_blank_lines(lines: list[str]) -> str:
    # Only whole blank lines go: the first kept line may be indented code.
    start, end = 0, len(lines)
    while start < end and not lines[start].strip():
        start += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    return "\n".join(lines[start:end])


def parse_markdown(item: SourceItem, data: bytes) -> Document:
    """Parse a ``text/markdown`` item into a document with one section per heading."""
    text, warning = decode_text_noted(data, item.uri)
    title, sections = markdown_sections(text, title_from_uri(item.uri))
    return Document(item.uri, item.content_hash, title, sections, dict(item.metadata),
                    warnings=(warning,) if warning else ())
