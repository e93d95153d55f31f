"""Records from CSV, JSON, JSONL and Parquet files (the real pyarrow) with a column mapping."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from flightdeck.data.documents import Document
from flightdeck.data.parsers import parse
from flightdeck.data.sources.files import FilesConfig, FilesSource
from needs import needs

pytestmark = pytest.mark.integration
# Parquet files are written and read with pyarrow, which the parquet extra brings
PARQUET = needs("parquet", "pyarrow")

FAQ_CSV = (
    "id;question;answer;lang;internal\n"
    "1;How long do refunds take?;Refunds take five days.;en;x\n"
    '2;"Can I pay; by card?";"Yes, by card\nor by transfer.";en;y\n'  # quoted delimiter and newline
    ";No id here;Lost answer;en;z\n"
    "4;;;en;w\n"
    "5;Only a question;;de;v\n"
)


def _source(path: Path, **kw: object) -> FilesSource:
    return FilesSource(FilesConfig(path=str(path), **kw))  # type: ignore[arg-type]


def _docs(src: FilesSource) -> dict[str, Document]:
    return {i.uri: parse(i, src.read(i)) for i in src.scan()}


def test_csv_with_sniffed_dialect_text_fields_and_metadata_fields(tmp_path: Path) -> None:
    path = tmp_path / "faq.csv"
    path.write_text(FAQ_CSV, "utf-8")
    src = _source(path, id_field="id", title_field="question", text_fields=["question", "answer"],
                  metadata_fields=["lang"])
    docs = _docs(src)
    assert list(docs) == ["faq.csv#1", "faq.csv#2", "faq.csv#5"]
    one, two, five = docs.values()
    assert one.title == "How long do refunds take?"
    assert one.sections[0].text == "How long do refunds take?\n\nRefunds take five days."
    assert two.sections[0].text == "Can I pay; by card?\n\nYes, by card\nor by transfer."
    assert one.metadata == {"id": "1", "lang": "en"}  # "internal" is not a metadata field
    assert five.sections[0].text == "Only a question"
    assert [(f.uri, f.reason.split(" (")[0]) for f in src.failures] == [
        ("faq.csv:5", "missing id field 'id'"),
        ("faq.csv:6", "missing text: field 'question', 'answer' is empty or absent; fill it or set text_fields"),
    ]


def test_csv_defaults_every_other_column_is_metadata_and_latin1_is_read(tmp_path: Path) -> None:
    (tmp_path / "kb.csv").write_bytes("_id,title,text,author\nk1,Café,Crème brûlée recipe,Zoë\n".encode("latin-1"))
    [(uri, doc)] = _docs(src := _source(tmp_path)).items()
    assert uri == "kb.csv#k1" and src.failures == []
    assert (doc.title, doc.sections[0].text, doc.metadata) == (
        "Café", "Crème brûlée recipe", {"_id": "k1", "author": "Zoë"})
    assert src.source_uri(next(iter(src.scan()))) == (tmp_path / "kb.csv").as_uri() + "#k1"


def test_csv_without_the_id_column_is_one_failure_not_one_per_row(tmp_path: Path) -> None:
    (tmp_path / "data.csv").write_text("a,b\n1,2\n3,4\n", "utf-8")
    src = _source(tmp_path)
    assert list(src.scan()) == []
    [failure] = src.failures
    assert failure.uri == "data.csv" and "no id column '_id' (columns: 'a', 'b'); set id_field" in failure.reason


def test_json_list_and_items_object_with_row_failures(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps([
        {"_id": 1, "title": "One", "text": "first", "tags": ["x"], "score": 0.5},
        "not an object",
        {"_id": 3},
        {"_id": 1, "text": "duplicate"},
    ]), "utf-8")
    (tmp_path / "b.json").write_text(json.dumps({"items": [{"_id": "z", "text": "zed"}]}), "utf-8")
    (tmp_path / "c.json").write_text(json.dumps({"name": "package.json-like"}), "utf-8")
    src = _source(tmp_path)
    docs = _docs(src)
    assert list(docs) == ["a.json#1", "b.json#z"]
    assert docs["a.json#1"].metadata == {"_id": 1, "score": 0.5}  # lists are not filterable metadata
    assert [(f.uri, f.reason[:30]) for f in src.failures] == [
        ("a.json:2", "a record must be an object wit"),
        ("a.json:3", "missing text: field 'text' is "),
        ("a.json:4", "duplicate id '1', first used a"),
        ("c.json", "not a list of records; expecte"),
    ]


@PARQUET
def test_parquet_rows_with_typed_columns(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({
        "doc_id": pa.array([10, 11, None], pa.int64()),
        "heading": ["Shipping", "Returns", "Orphan"],
        "body": ["Ships in two days.", "Returns within 30 days.", "no id"],
        "summary": ["fast", None, "x"],
        "published": [dt.datetime(2024, 5, 1, 12, 0), dt.datetime(2024, 6, 1), None],
        "blob": [b"\x00\x01", b"", b""],
    })
    pq.write_table(table, tmp_path / "kb.parquet")
    src = _source(tmp_path / "kb.parquet", id_field="doc_id", title_field="heading", text_fields=["body", "summary"])
    docs = _docs(src)
    assert list(docs) == ["kb.parquet#10", "kb.parquet#11"]
    first = docs["kb.parquet#10"]
    assert first.title == "Shipping" and first.sections[0].text == "Ships in two days.\n\nfast"
    assert first.metadata == {"doc_id": 10, "published": "2024-05-01T12:00:00", "blob": None}
    assert docs["kb.parquet#11"].sections[0].text == "Returns within 30 days."
    assert [f.uri for f in src.failures] == ["kb.parquet:3"]
    assert src.source_uri(next(iter(src.scan()))) == (tmp_path / "kb.parquet").as_uri() + "#10"


@PARQUET
def test_parquet_with_metadata_fields_reads_only_the_needed_columns(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"_id": ["a"], "text": ["alpha"], "lang": ["en"], "noise": ["n"]}),
                   tmp_path / "t.parquet")
    [doc] = _docs(_source(tmp_path, metadata_fields=["lang"])).values()
    assert doc.metadata == {"_id": "a", "lang": "en"}


def test_jsonl_with_text_fields_is_normalised(tmp_path: Path) -> None:
    (tmp_path / "q.jsonl").write_text(json.dumps({"_id": 1, "q": "Why?", "a": "Because.", "x": 1}) + "\n", "utf-8")
    [doc] = _docs(_source(tmp_path, text_fields=["q", "a"], metadata_fields=[])).values()
    assert doc.sections[0].text == "Why?\n\nBecause." and doc.metadata == {"_id": 1}


@PARQUET  # two of the files are Parquet
def test_corrupt_and_empty_record_files(tmp_path: Path) -> None:
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 but not really")
    (tmp_path / "empty.parquet").write_bytes(b"")
    (tmp_path / "empty.csv").write_bytes(b"")
    (tmp_path / "bin.csv").write_bytes(b"_id,text\n1,\x00\x01\x02")
    (tmp_path / "broken.json").write_text("[{", "utf-8")
    src = _source(tmp_path)
    assert list(src.scan()) == []
    reasons = {f.uri: f.reason for f in src.failures}
    assert sorted(reasons) == ["bad.parquet", "bin.csv", "broken.json", "empty.parquet"]  # empty.csv: no rows
    assert reasons["bad.parquet"].startswith("not a readable Parquet file")
    assert reasons["bin.csv"] == "binary content, not text"
    assert reasons["broken.json"].startswith("not valid JSON")
    assert reasons["empty.parquet"].startswith("empty file (0 bytes)")
