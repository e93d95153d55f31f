"""Records: one JSON object (a line of a ``.jsonl`` file) becomes a one-section document.

The field names are configurable in the source (``FilesConfig.id_field`` etc.), so the source puts them
into the item's metadata under :data:`RECORD_FIELDS_KEY`; the defaults apply when they are absent.
"""

from __future__ import annotations

import json
import re
from typing import Any

from flightdeck.data.documents import Document, Section, SourceItem
from flightdeck.errors import SourceError

__all__ = ["RECORD_MEDIA_TYPE", "RECORD_FIELDS_KEY", "parse_record", "record_fields"]

RECORD_MEDIA_TYPE = "application/x-record"
#: Item metadata key holding ``{"id": ..., "title": ..., "text": ...}``: the record's field names.
RECORD_FIELDS_KEY = "record_fields"
_DEFAULT_FIELDS = {"id": "_id", "title": "title", "text": "text"}
_SCALARS = (str, int, float, bool, type(None))
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _valid_text(s: str) -> str:
    """``s`` with lone surrogates (JSON's ``"\\ud800"``, which no UTF-8 store or hash accepts) replaced by
    U+FFFD, as undecodable bytes are in text files."""
    return _LONE_SURROGATE.sub("\ufffd", s)


def record_fields(item: SourceItem) -> dict[str, str]:
    """The field names of the item's record: the defaults overridden by the source's choice."""
    return {**_DEFAULT_FIELDS, **item.metadata.get(RECORD_FIELDS_KEY, {})}


def parse_record(item: SourceItem, data: bytes) -> Document:
    """Parse the JSON of one record into a document.

    The title field gives the title (and the heading path), the text field the single section's text;
    every other field whose value is a JSON scalar becomes document metadata (lists and objects are
    left out, since metadata must stay filterable).
    """
    try:
        record = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as e:  # ValueError: JSONDecodeError, or an int of 4300+ digits
        raise SourceError(f"{item.uri}: the record is not valid JSON ({e}); fix or remove that line") from e
    except RecursionError as e:  # "[[[[…" nested deeper than Python's stack
        raise SourceError(f"{item.uri}: the record is JSON nested too deeply to read") from e
    if not isinstance(record, dict):
        raise SourceError(f"{item.uri}: a record must be a JSON object, got {type(record).__name__}")
    fields = record_fields(item)
    text = record.get(fields["text"])
    if not isinstance(text, str):
        raise SourceError(f"{item.uri}: field {fields['text']!r} must be a string of text")
    text = _valid_text(text)
    raw_title = record.get(fields["title"])
    title = "" if raw_title is None else _valid_text(str(raw_title)).strip()
    metadata: dict[str, Any] = {k: v for k, v in item.metadata.items() if k != RECORD_FIELDS_KEY}
    metadata.update((_valid_text(k), _valid_text(v) if isinstance(v, str) else v) for k, v in record.items()
                    if k not in (fields["title"], fields["text"]) and isinstance(v, _SCALARS))
    sections = (Section((title,) if title else (), text),) if text.strip() else ()
    return Document(item.uri, item.content_hash, title, sections, metadata)
