import json

import pytest

from flightdeck.data.documents import SourceItem
from flightdeck.data.parsers import parse
from flightdeck.data.parsers.records import RECORD_FIELDS_KEY
from flightdeck.errors import SourceError

pytestmark = pytest.mark.unit


def _item(uri="faq.jsonl#7", **meta):
    return SourceItem(uri, "hash", "application/x-record", meta)


def test_record_becomes_one_section_with_scalar_metadata():
    record = {"_id": 7, "title": "Refunds", "text": "Refunds take 5 days.", "lang": "en",
              "score": 0.5, "tags": ["a", "b"], "extra": {"nested": 1}}
    doc = parse(_item(), json.dumps(record).encode())
    assert doc.title == "Refunds"
    assert [(s.heading_path, s.text) for s in doc.sections] == [(("Refunds",), "Refunds take 5 days.")]
    assert doc.metadata == {"_id": 7, "lang": "en", "score": 0.5}


def test_record_without_title_has_empty_heading_path():
    doc = parse(_item(), b'{"_id": "a", "text": "no title here"}')
    assert doc.title == ""
    assert doc.sections[0].heading_path == ()


def test_configured_field_names_come_from_item_metadata():
    fields = {"id": "key", "title": "name", "text": "body"}
    doc = parse(_item(**{RECORD_FIELDS_KEY: fields}), b'{"key": "k1", "name": "N", "body": "B"}')
    assert (doc.title, doc.sections[0].text, doc.metadata) == ("N", "B", {"key": "k1"})


def test_bad_record_names_the_item():
    with pytest.raises(SourceError, match=r"^faq\.jsonl#7: "):
        parse(_item(), b"{not json")


def test_unknown_media_type_lists_supported_ones():
    with pytest.raises(SourceError, match=r"x\.zip: no parser for media type 'application/zip'.*text/html"):
        parse(SourceItem("x.zip", "h", "application/zip"), b"PK")


def test_plain_text_is_one_section_titled_by_stem():
    doc = parse(SourceItem("notes/todo.txt", "h", "text/plain"), b"line one\n\nline two")
    assert doc.title == "todo"
    assert [(s.heading_path, s.text) for s in doc.sections] == [(("todo",), "line one\n\nline two")]


def test_binary_text_file_raises_source_error():
    with pytest.raises(SourceError, match="notes/blob.txt: binary content, not text"):
        parse(SourceItem("notes/blob.txt", "h", "text/plain"), b"ab\x00cd")
