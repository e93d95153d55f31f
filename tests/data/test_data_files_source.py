import json

import pytest

from flightdeck.data.documents import content_hash
from flightdeck.data.parsers import parse
from flightdeck.data.sources.base import ItemFailure, Source
from flightdeck.data.sources.files import FilesConfig, FilesSource, glob_match
from flightdeck.errors import SourceError

pytestmark = pytest.mark.unit


@pytest.fixture()
def folder(tmp_path):
    files = {
        "b.md": "# B\n\nbee",
        "a.txt": "plain",
        "sub/c.html": "<h1>C</h1><p>sea</p>",
        "sub/deeper/d.markdown": "dee",
        "drafts/e.md": "draft",
        "image.gif": "not included",
        "Z.htm": "<p>z</p>",
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text, "utf-8")
    return tmp_path


def _source(path, **kw):
    return FilesSource(FilesConfig(path=str(path), **kw))


def test_files_source_satisfies_the_protocol(folder):
    assert isinstance(_source(folder), Source)


@pytest.mark.exercises("data.sources.pdf_doc_ingestion")
def test_scan_yields_sorted_relative_posix_uris_and_media_types(folder):
    items = list(_source(folder).scan())
    assert [i.uri for i in items] == ["Z.htm", "a.txt", "b.md", "drafts/e.md", "sub/c.html",
                                      "sub/deeper/d.markdown"]
    assert [i.media_type for i in items] == ["text/html", "text/plain", "text/markdown", "text/markdown",
                                             "text/html", "text/markdown"]


def test_hashes_are_stable_and_follow_content(folder):
    first = {i.uri: i.content_hash for i in _source(folder).scan()}
    second = {i.uri: i.content_hash for i in _source(folder).scan()}
    assert first == second
    assert first["a.txt"] == content_hash(b"plain")
    (folder / "a.txt").write_text("changed", "utf-8")
    third = {i.uri: i.content_hash for i in _source(folder).scan()}
    assert third["a.txt"] != first["a.txt"]
    del first["a.txt"], third["a.txt"]
    assert third == first


def test_include_and_exclude(folder):
    src = _source(folder, include=["**/*.md", "**/*.markdown"], exclude=["drafts/**"])
    assert [i.uri for i in src.scan()] == ["b.md", "sub/deeper/d.markdown"]
    src = _source(folder, include=["sub/*.html", "*.txt"])
    assert [i.uri for i in src.scan()] == ["a.txt", "sub/c.html"]


def test_glob_semantics():
    assert glob_match("a.md", "**/*.md")
    assert glob_match("x/y/a.md", "**/*.md")
    assert not glob_match("x/a.md", "*.md")
    assert glob_match("drafts/x/y.md", "drafts/**")
    assert glob_match("a1.md", "a[0-9].md") and not glob_match("ab.md", "a[!b].md")


def test_read_returns_the_file_bytes(folder):
    src = _source(folder)
    items = {i.uri: i for i in src.scan()}
    assert src.read(items["sub/c.html"]) == b"<h1>C</h1><p>sea</p>"
    doc = parse(items["sub/c.html"], src.read(items["sub/c.html"]))
    assert doc.title == "C"


def test_too_big_file_is_a_failure_and_the_rest_still_come(folder):
    (folder / "big.txt").write_bytes(b"x" * 101)
    (folder / "small.txt").write_bytes(b"x" * 100)
    src = _source(folder, max_file_bytes=100)
    uris = [i.uri for i in src.scan()]
    assert "big.txt" not in uris and "small.txt" in uris and "b.md" in uris
    assert [f.uri for f in src.failures] == ["big.txt"]
    assert "max_file_bytes" in src.failures[0].reason and "101" in src.failures[0].reason


def test_unsupported_included_type_is_a_failure(folder):
    src = _source(folder, include=["*.gif", "*.txt"])
    assert [i.uri for i in src.scan()] == ["a.txt"]
    assert src.failures == [ItemFailure("image.gif", src.failures[0].reason)]
    assert "unsupported file type '.gif'" in src.failures[0].reason


def test_missing_path_raises_with_the_path(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(SourceError, match="nope: no such file or folder"):
        list(_source(missing).scan())


def test_read_refuses_uris_outside_the_folder(folder):
    from flightdeck.data.documents import SourceItem

    with pytest.raises(SourceError, match="outside the source folder"):
        _source(folder).read(SourceItem("../etc/passwd", "h", "text/plain"))


JSONL_LINES = [
    json.dumps({"_id": 1, "title": "One", "text": "first", "lang": "en"}),
    json.dumps({"_id": "two", "text": "second"}),
    '{"_id": 3, "text": "broken"',  # line 3: bad JSON
    json.dumps({"_id": 4, "title": "no text"}),  # line 4: missing text
    "",
    json.dumps({"text": "no id"}),  # line 6: missing id
    json.dumps({"_id": 1, "text": "dup"}),  # line 7: duplicate id
    json.dumps({"_id": 8, "text": "last"}),
]


@pytest.fixture()
def jsonl(tmp_path):
    path = tmp_path / "file.jsonl"
    path.write_text("\n".join(JSONL_LINES) + "\n", "utf-8")
    return path


def test_jsonl_records_and_per_line_failures(jsonl):
    src = _source(jsonl)
    items = list(src.scan())
    assert [i.uri for i in items] == ["file.jsonl#1", "file.jsonl#two", "file.jsonl#8"]
    assert {i.media_type for i in items} == {"application/x-record"}
    assert items[0].content_hash == content_hash(JSONL_LINES[0].encode())
    assert [f.uri for f in src.failures] == ["file.jsonl:3", "file.jsonl:4", "file.jsonl:6", "file.jsonl:7"]
    assert "not valid JSON" in src.failures[0].reason
    assert "'text'" in src.failures[1].reason and "'_id'" in src.failures[2].reason
    assert "duplicate id" in src.failures[3].reason


def test_jsonl_read_and_parse_record(jsonl):
    src = _source(jsonl)
    first = next(iter(src.scan()))
    assert src.read(first) == JSONL_LINES[0].encode()
    doc = parse(first, src.read(first))
    assert (doc.title, doc.sections[0].text, doc.metadata) == ("One", "first", {"_id": 1, "lang": "en"})


def test_jsonl_inside_a_folder_and_custom_fields(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "kb.jsonl").write_text('{"key": "k", "name": "N", "body": "B"}\n', "utf-8")
    src = _source(tmp_path, id_field="key", title_field="name", text_field="body")
    [item] = list(src.scan())
    assert item.uri == "data/kb.jsonl#k"
    doc = parse(item, src.read(item))
    assert (doc.title, doc.sections[0].text) == ("N", "B")


def test_config_is_frozen_and_strict(tmp_path):
    cfg = FilesConfig(path=str(tmp_path))
    with pytest.raises(ValueError):
        cfg.path = "x"  # type: ignore[misc]
    with pytest.raises(ValueError, match="extra"):
        FilesConfig(path=str(tmp_path), recursive=True)
