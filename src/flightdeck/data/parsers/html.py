"""HTML: the main content of a page, split into sections by its ``h1``–``h6`` headings.

Built for generated documentation (Sphinx, MkDocs, most CMS pages): navigation, sidebars, scripts and
permalink marks are dropped so that only what a reader came for is indexed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from bs4 import BeautifulSoup
from bs4.element import NavigableString, PageElement, PreformattedString, Tag

from flightdeck.data.documents import Document, Section, SourceItem
from flightdeck.data.parsers.decoding import decode_text_noted
from flightdeck.data.parsers.text import title_from_uri

__all__ = ["parse_html", "html_sections"]

# Tags whose content is page furniture or code, never document text.
_DROP = ("script", "style", "noscript", "nav", "header", "footer", "form", "aside", "iframe", "svg",
         "template", "button")
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
# Tags that start a new block of text (a paragraph break in the output).
_BLOCKS = frozenset({
    "address", "article", "blockquote", "caption", "dd", "details", "div", "dl", "dt", "fieldset",
    "figcaption", "figure", "hr", "li", "main", "ol", "p", "section", "summary", "table", "tbody",
    "tfoot", "thead", "tr", "ul",
})
_SPACE = re.compile(r"\s+")


def _main_content(soup: BeautifulSoup) -> Tag:
    # The first match wins: the ARIA role is the most deliberate marker, Sphinx's div.body next.
    for selector in ('[role="main"]', "div.body", "main", "article"):
        found = soup.select_one(selector)
        if found is not None:
            return found
    return soup.body or soup


class _SectionBuilder:
    """Collects text blocks under the current heading chain while the tree is walked."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.headings: list[tuple[int, str]] = []
        self.sections: list[Section] = []
        self.blocks: list[str] = []
        self.inline: list[str] = []

    def text(self, s: str) -> None:
        self.inline.append(s)

    def end_block(self) -> None:
        block = _SPACE.sub(" ", "".join(self.inline)).strip()
        self.inline = []
        if block:
            self.blocks.append(block)

    def pre(self, s: str) -> None:
        self.end_block()
        s = s.strip("\n")
        if s.strip():
            self.blocks.append(s)

    def heading(self, level: int, text: str) -> None:
        self.end_section()
        while self.headings and self.headings[-1][0] >= level:
            self.headings.pop()
        self.headings.append((level, text))

    def end_section(self) -> None:
        self.end_block()
        if self.blocks:
            names = tuple(h for _, h in self.headings if h)
            # Keep the document title first even when the page's h1 was not inside the main content.
            if not self.headings or self.headings[0][0] != 1:
                names = (self.title, *names)
            self.sections.append(Section(names, "\n\n".join(self.blocks)))
        self.blocks = []


def _walk(node: Tag, out: _SectionBuilder) -> None:
    # An explicit stack, not recursion: pages nest tags thousands deep (unclosed <div>s or <font>s, which
    # html.parser nests), deeper than Python's recursion limit. Each entry: the children still to visit
    # and what to do once they are done.
    stack: list[tuple[Iterator[PageElement], Callable[[], None] | None]] = [(iter(node.children), None)]
    while stack:
        children, after = stack[-1]
        child = next(children, None)
        if child is None:
            stack.pop()
            if after is not None:
                after()
            continue
        if isinstance(child, NavigableString):
            if not isinstance(child, PreformattedString):  # comments, doctypes, CDATA
                out.text(str(child))
            continue
        if not isinstance(child, Tag):
            continue
        name = child.name
        if name in _HEADINGS:
            out.heading(_HEADINGS[name], _SPACE.sub(" ", child.get_text()).strip())
        elif name == "pre":
            out.pre(child.get_text())
        elif name == "br":
            out.end_block()
        elif name in ("td", "th"):
            out.text(" ")
            stack.append((iter(child.children), lambda: out.text(" ")))
        elif name in _BLOCKS:
            out.end_block()
            stack.append((iter(child.children), out.end_block))
        else:
            stack.append((iter(child.children), None))


def _remove(tags: list[Tag]) -> None:
    for tag in tags:
        # A tag nested in one removed earlier (a script inside a nav) is already gone.
        if not tag.decomposed:
            tag.decompose()


def html_sections(html: str, default_title: str) -> tuple[str, tuple[Section, ...]]:
    """Split an HTML page into ``(title, sections)``.

    The title is the first ``<h1>`` of the main content, else ``<title>``, else ``default_title``.
    Paragraphs and list items become blocks separated by blank lines; ``<pre>`` keeps its line breaks;
    heading text appears only in heading paths, never again in the body.
    """
    soup = BeautifulSoup(html, "html.parser")
    main = _main_content(soup)
    _remove(main.select("a.headerlink"))  # Sphinx's "¶" permalinks
    h1 = main.find("h1")
    title = _SPACE.sub(" ", h1.get_text()).strip() if h1 is not None else ""
    if not title and soup.title is not None:
        title = _SPACE.sub(" ", soup.title.get_text()).strip()
    title = title or default_title
    _remove(main.find_all(_DROP))
    out = _SectionBuilder(title)
    _walk(main, out)
    out.end_section()
    return title, tuple(out.sections)


def parse_html(item: SourceItem, data: bytes) -> Document:
    """Parse a ``text/html`` item into a document with one section per heading."""
    text, warning = decode_text_noted(data, item.uri)
    title, sections = html_sections(text, title_from_uri(item.uri))
    return Document(item.uri, item.content_hash, title, sections, dict(item.metadata),
                    warnings=(warning,) if warning else ())
