from pathlib import Path

import pytest

from flightdeck.data.documents import SourceItem
from flightdeck.data.parsers import parse
from flightdeck.data.parsers.html import html_sections

pytestmark = pytest.mark.unit

SPHINX = """<!DOCTYPE html>
<html><head><title>5. Data Structures &#8212; Python 3.11 documentation</title>
<script>var DOCUMENTATION_OPTIONS = {};</script><style>body {color: red}</style></head>
<body>
<nav class="menu" role="navigation"><a href="../index.html">Python docs home</a></nav>
<div class="sphinxsidebar"><form class="search"><input name="q"/></form></div>
<div class="document"><div class="bodywrapper">
<div class="body" role="main">
  <section id="data-structures">
  <h1>5. Data Structures<a class="headerlink" href="#data-structures" title="Permalink">¶</a></h1>
  <p>This chapter describes some things you’ve learned about already in more detail.</p>
  <script>trackPageView();</script>
  <section id="more-on-lists">
  <h2>5.1. More on Lists<a class="headerlink" href="#more-on-lists">¶</a></h2>
  <p>The list data type has some more methods:</p>
  <dl><dt>list.append(x)<a class="headerlink" href="#list.append">¶</a></dt>
  <dd><p>Add an item to the end of the list.</p></dd></dl>
  <ul><li><p>first item</p></li><li>second <em>item</em></li></ul>
  <div class="highlight"><pre><span></span><span class="gp">&gt;&gt;&gt; </span>stack = [3, 4]
<span class="gp">&gt;&gt;&gt; </span>stack.append(6)
    indented line</pre></div>
  <section id="stacks"><h3>5.1.1. Using Lists as Stacks</h3><p>Last in, first out.</p></section>
  </section>
  <section id="tuples"><h2>5.3. Tuples</h2><p>A tuple consists of values.</p></section>
  </section>
</div></div></div>
<footer><p>&#169; Copyright 2001-2023, Python Software Foundation.</p></footer>
</body></html>
"""


@pytest.fixture()
def sphinx():
    return html_sections(SPHINX, "datastructures")


def test_sphinx_title_and_heading_paths(sphinx):
    title, sections = sphinx
    assert title == "5. Data Structures"
    assert [s.heading_path for s in sections] == [
        ("5. Data Structures",),
        ("5. Data Structures", "5.1. More on Lists"),
        ("5. Data Structures", "5.1. More on Lists", "5.1.1. Using Lists as Stacks"),
        ("5. Data Structures", "5.3. Tuples"),
    ]


def test_sphinx_furniture_is_gone(sphinx):
    _, sections = sphinx
    everything = "\n".join(s.text for s in sections) + "".join("".join(s.heading_path) for s in sections)
    junks = ("¶", "trackPageView", "DOCUMENTATION_OPTIONS", "Python docs home", "Copyright", "color: red")
    for junk in junks:
        assert junk not in everything


def test_blocks_are_separated_by_blank_lines_and_pre_keeps_newlines(sphinx):
    _, sections = sphinx
    lists = sections[1].text
    assert lists.split("\n\n")[:5] == [
        "The list data type has some more methods:",
        "list.append(x)",
        "Add an item to the end of the list.",
        "first item",
        "second item",
    ]
    assert ">>> stack = [3, 4]\n>>> stack.append(6)\n    indented line" in lists


def test_heading_text_is_not_duplicated_in_body(sphinx):
    _, sections = sphinx
    for s in sections:
        assert s.heading_path[-1] not in s.text


def test_main_content_preference_and_title_fallback():
    html = """<html><head><title>Page Title</title></head><body>
    <header><h1>Site name</h1></header>
    <aside>Related links</aside>
    <main><h2>Usage</h2><p>Run it.</p><iframe src="x"></iframe><svg><text>icon</text></svg></main>
    <article><p>not main</p></article>
    </body></html>"""
    title, sections = html_sections(html, "stem")
    assert title == "Page Title"  # no h1 inside <main>
    assert [(s.heading_path, s.text) for s in sections] == [(("Page Title", "Usage"), "Run it.")]


def test_body_fallback_and_stem_title():
    title, sections = html_sections("<p>Just a paragraph.</p><noscript>enable js</noscript>", "notes")
    assert title == "notes"
    assert [(s.heading_path, s.text) for s in sections] == [(("notes",), "Just a paragraph.")]


def test_parse_dispatches_html():
    doc = parse(SourceItem("tutorial/datastructures.html", "h1", "text/html"), SPHINX.encode("utf-8"))
    assert doc.title == "5. Data Structures"
    assert doc.uri == "tutorial/datastructures.html"


CORPUS = Path(__file__).resolve().parents[2] / "examples" / "python-docs" / "corpus"


@pytest.mark.skipif(not CORPUS.is_dir(), reason="example corpus not present")
@pytest.mark.exercises("data.sources.pdf_doc_ingestion")
def test_real_python_docs_pages_parse_cleanly():
    for page in sorted(CORPUS.rglob("*.html"))[:10]:
        title, sections = html_sections(page.read_text("utf-8"), page.stem)
        text = "\n".join(s.text for s in sections)
        assert sections and title, page
        assert "¶" not in text and "Permalink" not in text, page
        assert all(s.heading_path[0] == title for s in sections), page
