"""Records from tabular files: ``.csv``, ``.json`` and ``.parquet`` rows, and the column mapping.

The files source turns every row into one ``application/x-record`` item (parsed by
:mod:`flightdeck.data.parsers.records`), as it does for the lines of a ``.jsonl`` file. The readers here
yield ``(where, row)`` pairs, where ``where`` says which row it is for error messages (the line of a CSV
file, the 1-based position in a JSON list or a Parquet file); :class:`ColumnMapping` turns a row into the
normalised record: id, title, the text (one column, or several joined) and the metadata columns.
"""

from __future__ import annotations

import csv
import datetime as _dt
import decimal
import io
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from flightdeck.data.parsers.decoding import decode_text
from flightdeck.errors import SourceError
from flightdeck.registry.lookup import optional_import

__all__ = ["ColumnMapping", "RowError", "read_csv", "read_json", "read_parquet", "csv_columns",
           "parquet_columns"]

_DELIMITERS = ",;\t|"
_LINE_END = re.compile(r"\r\n|\r|\n")
#: The largest CSV field accepted: the csv module's default (128 KiB) is too small for article bodies.
_CSV_FIELD_LIMIT = 64 * 1024 * 1024


class RowError(ValueError):
    """A row that cannot become a record; the message says why and what to do."""


def _jsonable(value: Any) -> Any:
    """A JSON-friendly form of a cell value (Parquet has dates, decimals, bytes…)."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value) if value.is_finite() else None
    if isinstance(value, (bytes, bytearray, memoryview)):
        return None  # binary cells are not text, nor filterable metadata
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return str(value)


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, str) and not value.strip())


@dataclass(frozen=True)
class ColumnMapping:
    """Which fields of a row are its id, title, text and metadata (from ``FilesConfig``).

    ``text_fields`` (several columns, joined by blank lines, empty ones skipped) replaces
    ``text_field`` when set; ``metadata_fields`` restricts the metadata to those columns (by default
    every other column is metadata).
    """

    id_field: str = "_id"
    title_field: str = "title"
    text_field: str = "text"
    text_fields: tuple[str, ...] | None = None
    metadata_fields: tuple[str, ...] | None = None

    @property
    def text_columns(self) -> tuple[str, ...]:
        return self.text_fields or (self.text_field,)

    @property
    def record_fields(self) -> dict[str, str]:
        """The field names of the normalised record, for ``item.metadata["record_fields"]``."""
        return {"id": self.id_field, "title": self.title_field, "text": self.text_field}

    @property
    def wanted_columns(self) -> list[str] | None:
        """The columns a columnar reader needs, or ``None`` for all of them."""
        if self.metadata_fields is None:
            return None
        return list(dict.fromkeys([self.id_field, self.title_field, *self.text_columns, *self.metadata_fields]))

    def missing_columns(self, columns: list[str]) -> str | None:
        """Why a file with these ``columns`` cannot give any record, or ``None``."""
        have = set(columns)
        shown = ", ".join(repr(c) for c in columns[:20]) + (" …" if len(columns) > 20 else "")
        if self.id_field not in have:
            return f"no id column {self.id_field!r} (columns: {shown}); set id_field"
        if not have.intersection(self.text_columns):
            names = ", ".join(repr(c) for c in self.text_columns)
            return f"no text column {names} (columns: {shown}); set text_field or text_fields"
        return None

    def record(self, row: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """``(id, normalised record)`` of ``row``; raises :class:`RowError` for a missing id or text."""
        rid = row.get(self.id_field)
        if isinstance(rid, float) and rid.is_integer():
            rid = int(rid)  # a numeric id column read as floats (Parquet with nulls, pandas exports)
        if isinstance(rid, bool) or not isinstance(rid, (str, int)) or str(rid).strip() == "":
            raise RowError(f"missing id field {self.id_field!r} (a string or integer); add one or set id_field")
        parts = [str(row[c]).strip() if not isinstance(row[c], (dict, list)) else json.dumps(row[c])
                 for c in self.text_columns if _present(row.get(c))]
        if not parts:
            names = ", ".join(repr(c) for c in self.text_columns)
            raise RowError(f"missing text: field {names} is empty or absent; fill it or set "
                           f"{'text_fields' if self.text_fields else 'text_field'}")
        used = {self.id_field, self.title_field, self.text_field, *self.text_columns}
        keys = self.metadata_fields if self.metadata_fields is not None else [k for k in row if k not in used]
        record: dict[str, Any] = {self.id_field: rid}
        if _present(row.get(self.title_field)):
            record[self.title_field] = str(row[self.title_field]).strip()
        record[self.text_field] = "\n\n".join(parts)
        for key in keys:
            if key in row and key not in (self.id_field, self.title_field, self.text_field):
                record[key] = _jsonable(row[key])
        return str(rid), record


def _csv_text(data: bytes, uri: str) -> str:
    return decode_text(data, uri)  # BOMs, UTF-8, else Windows-1252/Latin-1; NUL bytes: not a CSV


def _dialect(text: str, id_field: str) -> type[csv.Dialect] | csv.Dialect:
    sample = text[:65536]
    try:
        sniffed: Any = csv.Sniffer().sniff(sample, delimiters=_DELIMITERS)
    except csv.Error:
        sniffed = csv.excel
    # The sniffer guesses from character counts, which free text can fool: prefer the delimiter that
    # splits the header into a row holding the id column.
    # (a line ends at "\r" too: files from old Macs; and a stray "\r" inside the header is a csv.Error)
    header = _LINE_END.split(sample, 1)[0]
    for delimiter in [sniffed.delimiter, *_DELIMITERS]:
        try:
            cells = next(csv.reader([header], delimiter=delimiter), [])
        except csv.Error:  # e.g. a delimiter the sniffer guessed that csv then refuses
            continue
        if id_field in cells:
            if delimiter == sniffed.delimiter:
                return sniffed
            return type("Sniffed", (csv.excel,), {"delimiter": delimiter})
    return sniffed


def csv_columns(data: bytes, uri: str, mapping: ColumnMapping) -> tuple[str, list[str]]:
    """The decoded text and the header row of a CSV file."""
    text = _csv_text(data, uri)
    reader = csv.reader(io.StringIO(text, newline=""), _dialect(text, mapping.id_field))
    try:
        header = next(reader, [])
    except csv.Error as e:
        raise SourceError(f"{uri}:1: not a readable CSV header ({e})") from e
    return text, header


def read_csv(text: str, uri: str, mapping: ColumnMapping) -> Iterator[tuple[str, dict[str, Any]]]:
    """Rows of a CSV ``text`` (its first row names the columns), as ``("file.csv:LINE", row)``.

    The dialect is sniffed (``,`` ``;`` tab ``|``). A malformed line stops the file there with a
    :class:`~flightdeck.errors.SourceError` naming the line; the rows before it are kept by the caller.
    """
    if csv.field_size_limit() < _CSV_FIELD_LIMIT:
        csv.field_size_limit(_CSV_FIELD_LIMIT)  # process-wide, and only ever raised
    reader = csv.DictReader(io.StringIO(text, newline=""), dialect=_dialect(text, mapping.id_field))
    try:
        for row in reader:
            if not any(_present(v) for k, v in row.items() if k is not None):
                continue  # blank line
            row.pop(None, None)  # surplus cells of a long row  # type: ignore[call-overload]
            yield f"{uri}:{reader.line_num}", row
    except csv.Error as e:
        raise SourceError(f"{uri}:{reader.line_num}: not a readable CSV line ({e}); fix the quoting") from e


def read_json(data: bytes, uri: str) -> Iterator[tuple[str, Any]]:
    """Rows of a ``.json`` file holding a list of objects, or ``{"items": [...]}``, as ``("file.json:N", row)``."""
    try:
        value = json.loads(decode_text(data, uri))
    except json.JSONDecodeError as e:
        raise SourceError(f"{uri}: not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from e
    except RecursionError as e:  # "[[[[…" nested deeper than Python's stack
        raise SourceError(f"{uri}: JSON nested too deeply to read") from e
    except ValueError as e:  # an integer of more than 4300 digits
        raise SourceError(f"{uri}: not valid JSON ({e})") from e
    if isinstance(value, dict) and isinstance(value.get("items"), list):
        value = value["items"]
    if not isinstance(value, list):
        raise SourceError(f"{uri}: not a list of records; expected a JSON array of objects or "
                          '{"items": [...]}; exclude the file if it is not data')
    for n, row in enumerate(value, start=1):
        yield f"{uri}:{n}", row


def _parquet_file(data: bytes, uri: str) -> Any:
    pq = optional_import("pyarrow.parquet", "parquet", f"{uri}: reading Parquet files")
    try:
        return pq.ParquetFile(io.BytesIO(data))
    except Exception as e:  # pyarrow raises ArrowInvalid, OSError… for a file that is not Parquet
        raise SourceError(f"{uri}: not a readable Parquet file ({e})") from e


def parquet_columns(data: bytes, uri: str) -> list[str]:
    """The column names of a Parquet file."""
    return list(_parquet_file(data, uri).schema_arrow.names)


def read_parquet(data: bytes, uri: str, mapping: ColumnMapping) -> Iterator[tuple[str, dict[str, Any]]]:
    """Rows of a Parquet file, batch by batch, as ``("file.parquet:N", row)`` (N from 1)."""
    pf = _parquet_file(data, uri)
    names = set(pf.schema_arrow.names)
    wanted = mapping.wanted_columns
    columns = [c for c in wanted if c in names] if wanted is not None else None
    n = 0
    try:
        for batch in pf.iter_batches(batch_size=2048, columns=columns):
            for row in batch.to_pylist():
                n += 1
                yield f"{uri}:{n}", row
    except Exception as e:  # ArrowInvalid, ArrowNotImplementedError (an unsupported type), OSError…
        raise SourceError(f"{uri}:{n + 1}: not a readable Parquet row ({type(e).__name__}: {e})") from e
