import pytest

from flightdeck.data.documents import SourceItem
from flightdeck.data.parsers import parse
from flightdeck.data.parsers.markdown import markdown_sections

pytestmark = pytest.mark.unit

DOC = """\
Intro before any heading.

# Data Structures

About data structures.

## Lists

Lists are mutable.

```python
# not a heading, a comment in code
x = [1, 2]
```

### Stacks ###

Use append and pop.

## Tuples

Tuples are immutable.
"""


def _item(uri="docs/datastructures.md"):
    return SourceItem(uri, "h", "text/markdown")


def test_heading_paths_follow_the_heading_levels():
    title, sections = markdown_sections(DOC, "fallback")
    assert title == "Data Structures"
    assert [s.heading_path for s in sections] == [
        ("Data Structures",),  # text before the first heading: the title
        ("Data Structures",),
        ("Data Structures", "Lists"),
        ("Data Structures", "Lists", "Stacks"),
        ("Data Structures", "Tuples"),
    ]
    assert sections[0].text == "Intro before any heading."
    assert sections[4].text == "Tuples are immutable."


def test_fenced_code_is_never_split_and_keeps_its_lines():
    _, sections = markdown_sections(DOC, "fallback")
    lists = sections[2]
    assert "# not a heading, a comment in code\nx = [1, 2]\n```" in lists.text
    assert lists.text.startswith("Lists are mutable.")


def test_tilde_fence_and_longer_closing_fence():
    text = "# T\n\n~~~~\n# inside\n~~~\n# still inside\n~~~~~\n\n## After\n\nbody"
    _, sections = markdown_sections(text, "x")
    assert "# still inside" in sections[0].text
    assert sections[-1].heading_path == ("T", "After")


def test_heading_text_not_repeated_in_body():
    _, sections = markdown_sections(DOC, "fallback")
    assert all("## " not in s.text and "Stacks ###" not in s.text for s in sections)


def test_title_falls_back_to_file_stem_and_leads_paths():
    doc = parse(_item("guides/install-guide.md"), b"## Requirements\n\nPython 3.11\n")
    assert doc.title == "install-guide"
    assert doc.sections[0].heading_path == ("install-guide", "Requirements")


def test_hash_without_space_is_not_a_heading():
    _, sections = markdown_sections("#hashtag line\n\n    # indented code, not a heading", "t")
    assert len(sections) == 1
    assert sections[0].heading_path == ("t",)


def test_empty_sections_are_dropped():
    _, sections = markdown_sections("# A\n\n## B\n\n## C\n\ntext", "t")
    assert [s.heading_path for s in sections] == [("A", "C")]


def test_parse_dispatches_markdown_and_keeps_item_identity():
    doc = parse(SourceItem("a/b.markdown", "abc123", "text/markdown"), DOC.encode())
    assert (doc.uri, doc.content_hash, doc.title) == ("a/b.markdown", "abc123", "Data Structures")
    assert len(doc.sections) == 5
