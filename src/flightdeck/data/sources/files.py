"""The ``files`` source: a folder of documents, or one file.

Documents: ``.md``, ``.txt``, ``.html``, ``.pdf``, ``.docx``, ``.pptx`` and (OCRed, when included)
images. Records: every row of a ``.csv``, ``.json``, ``.jsonl`` or ``.parquet`` file is one item, named
``<file>#<id>``, with a column mapping that says which fields are the id, title, text and metadata.

Untrusted input stays contained: a file over ``max_file_bytes`` is skipped from its size alone, without
being read; PDFs over ``max_pages`` and Office files that look like zip bombs are refused by their
parsers; every such item is reported in ``failures`` (path and reason) and the rest still comes.
Symbolic links are judged by where they really point: not followed by default (``follow_symlinks:
false``), and never to anything outside the folder, so a ``docs/leak.txt -> /etc/shadow`` is a reported
failure, not a searchable document.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from flightdeck.data.documents import SourceItem, content_hash
from flightdeck.data.parsers.decoding import decode_text_noted
from flightdeck.data.parsers.limits import PARSER_OPTIONS_KEY, ParserOptions
from flightdeck.data.parsers.records import RECORD_FIELDS_KEY, RECORD_MEDIA_TYPE
from flightdeck.data.parsers.tabular import (
    ColumnMapping,
    RowError,
    csv_columns,
    parquet_columns,
    read_csv,
    read_json,
    read_parquet,
)
from flightdeck.data.sources.base import ItemFailure, ItemWarning
from flightdeck.errors import FlightdeckError, SourceError

__all__ = ["FilesConfig", "FilesSource", "MEDIA_TYPES", "RECORD_SUFFIXES", "glob_match"]

#: file suffix -> media type of a document file
MEDIA_TYPES: dict[str, str] = {
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".txt": "text/plain",
    ".html": "text/html",
    ".htm": "text/html",
    ".pdf": "application/pdf",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
}
#: suffixes of files whose rows are records (one item per row)
RECORD_SUFFIXES = (".csv", ".json", ".jsonl", ".parquet")
_JSONL = ".jsonl"
# Formats whose parsers need the parser options (OCR mode, limits) in the item metadata.
_BINARY_DOCUMENTS = frozenset({".pdf", ".docx", ".pptx", ".png", ".jpg", ".jpeg", ".tif", ".tiff"})
_IMAGES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff"})
_DEFAULT_INCLUDE = ["**/*.md", "**/*.markdown", "**/*.txt", "**/*.html", "**/*.htm", "**/*.pdf", "**/*.docx",
                    "**/*.pptx", "**/*.csv", "**/*.json", "**/*.jsonl", "**/*.parquet"]


class FilesConfig(BaseModel):
    """Options of the ``files`` source.

    ``path`` is a folder (walked recursively) or a single file, e.g. a ``.csv`` file of records; the
    caller resolves it to an absolute path. ``include``/``exclude`` are globs on the POSIX path relative
    to the folder, where ``**/`` matches any number of folders, including none. Images (``.png``,
    ``.jpg``, ``.tif``) are OCRed when included; they are not by default, since the pictures in a
    documentation folder are rarely text.

    Records (``.csv``, ``.json``, ``.jsonl``, ``.parquet``): ``id_field`` names each row (the item is
    ``file.csv#<id>``), ``title_field`` its title, ``text_field`` its text, or ``text_fields`` several
    text columns joined by blank lines; ``metadata_fields`` restricts the metadata to those columns
    (by default every other column is metadata).

    Limits (safe defaults): ``max_file_bytes`` (judged from the file's size, before reading it),
    ``max_pages`` per PDF, ``max_unzipped_bytes`` and ``max_zip_ratio`` for the zip containers of
    ``.docx``/``.pptx``. ``ocr``: ``auto`` OCRs PDF pages without a text layer and images when pytesseract
    and tesseract are installed, ``force`` OCRs every PDF page, ``off`` never OCRs;
    ``ocr_languages`` are Tesseract's language codes (``eng+deu``).

    ``follow_symlinks``: ``false`` (default) skips every symbolic link found in the folder and reports it;
    ``true`` follows links whose real target lies inside the folder (a loop of folder links is reported,
    not walked). A link whose target lies outside the folder is refused either way.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str
    include: list[str] = _DEFAULT_INCLUDE
    exclude: list[str] = []
    max_file_bytes: int = Field(50_000_000, gt=0)
    max_pages: int = Field(2000, gt=0)
    max_unzipped_bytes: int = Field(200_000_000, gt=0)
    max_zip_ratio: float = Field(100.0, gt=1)
    ocr: Literal["auto", "off", "force"] = "auto"
    ocr_languages: str = Field("eng", pattern=r"^[A-Za-z_]+(\+[A-Za-z_]+)*$")
    id_field: str = "_id"
    title_field: str = "title"
    text_field: str = "text"
    text_fields: list[str] | None = None
    metadata_fields: list[str] | None = None
    follow_symlinks: bool = False

    @field_validator("path")
    @classmethod
    def _path_not_empty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("path is empty; set it to a folder of documents or a file of records")
        return v

    @field_validator("text_fields")
    @classmethod
    def _text_fields_not_empty(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and not v:
            raise ValueError("text_fields is empty; list the text columns, or leave it out and set text_field")
        return v

    def column_mapping(self) -> ColumnMapping:
        """The record column mapping these options describe."""
        return ColumnMapping(self.id_field, self.title_field, self.text_field,
                             tuple(self.text_fields) if self.text_fields else None,
                             tuple(self.metadata_fields) if self.metadata_fields is not None else None)

    def parser_options(self) -> ParserOptions:
        """The options handed to the document parsers through each item's metadata."""
        return ParserOptions(ocr=self.ocr, ocr_languages=self.ocr_languages, max_pages=self.max_pages,
                             max_unzipped_bytes=self.max_unzipped_bytes, max_zip_ratio=self.max_zip_ratio)


def _glob_regex(pattern: str) -> re.Pattern[str]:
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and (end := pattern.find("]", i + 2)) != -1:
            body = pattern[i + 1:end]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def glob_match(path: str, pattern: str) -> bool:
    """Whether the relative POSIX ``path`` matches ``pattern`` (``*``, ``?``, ``[...]`` and ``**``)."""
    return _glob_regex(pattern).match(path) is not None


class FilesSource:
    """Lists and reads the files under ``config.path`` (see :class:`FilesConfig`).

    Item URIs are POSIX paths relative to the folder (for a single file, its name) and
    ``<path>#<id>`` for records. Items that cannot be delivered (too big, unreadable, an unsupported
    type, a malformed record) are skipped and recorded in ``failures`` instead of stopping the scan;
    documents that cannot be parsed (a corrupt or encrypted PDF, a zip bomb) fail in their parser, which
    the pipeline reports the same way.

    A zero-byte file of a text format (``.txt``, ``.md``, ``.html``) is an empty document: it is listed,
    gives no chunks and is not a failure. A zero-byte PDF, Office file or image cannot be a valid file of
    its format and is a failure (``empty file``).
    """

    def __init__(self, config: FilesConfig) -> None:
        self.config = config
        self.failures: list[ItemFailure] = []
        self.warnings: list[ItemWarning] = []
        self._root = Path(config.path)
        self._records: dict[str, bytes] = {}
        self._include = [_glob_regex(p) for p in config.include]
        self._exclude = [_glob_regex(p) for p in config.exclude]
        self._mapping = config.column_mapping()
        self._parser_options = config.parser_options().to_metadata()

    def scan(self) -> Iterator[SourceItem]:
        """Yield every included file (or record) in sorted path order, with its content hash."""
        self.failures = []
        self.warnings = []
        self._records = {}
        supported = ", ".join(sorted([*MEDIA_TYPES, *RECORD_SUFFIXES]))
        for relpath, file in self._files():
            suffix = Path(relpath).suffix.lower()
            if suffix not in RECORD_SUFFIXES and suffix not in MEDIA_TYPES:
                self._fail(relpath, f"unsupported file type {suffix or '(none)'!r}; supported: {supported}; "
                                    "narrow `include`")
                continue
            if suffix in _IMAGES and self.config.ocr == "off":
                self._fail(relpath, "an image needs OCR, and ocr is 'off' for this source; set ocr: auto "
                                    "or exclude images")
                continue
            data = self._load(relpath, file)
            if data is None:
                continue
            if not data and (suffix in _BINARY_DOCUMENTS or suffix == ".parquet"):
                self._fail(relpath, f"empty file (0 bytes): not a valid {suffix[1:].upper()} file")
                continue
            if suffix in RECORD_SUFFIXES:
                yield from self._scan_records(relpath, suffix, data)
            elif suffix in _BINARY_DOCUMENTS:
                yield SourceItem(relpath, content_hash(data), MEDIA_TYPES[suffix],
                                 {PARSER_OPTIONS_KEY: dict(self._parser_options)})
            else:
                yield SourceItem(relpath, content_hash(data), MEDIA_TYPES[suffix])

    def read(self, item: SourceItem) -> bytes:
        """The bytes of a listed file, or the JSON of a listed record."""
        if "#" in item.uri and item.media_type == RECORD_MEDIA_TYPE:
            try:
                return self._records[item.uri]
            except KeyError:
                raise SourceError(f"{item.uri}: not a record of the last scan of {self._root}; "
                                  "run scan() before read()") from None
        base = self._root.parent if self._root.is_file() else self._root
        file = Path(os.path.normpath(base / item.uri))
        # A URI is data: never let one reach outside the configured folder.
        if base not in file.parents:
            raise SourceError(f"{item.uri}: outside the source folder {base}; use a URI from scan()")
        if not self._root.is_file():
            # ...and neither may a link, made or swapped in since the scan: judge the real path.
            real_base = Path(os.path.realpath(base))
            real = Path(os.path.realpath(file))
            if real_base not in real.parents:
                raise SourceError(f"{item.uri}: a symbolic link to {real}, outside the source folder {base}: refused")
            if not self.config.follow_symlinks and real != real_base / file.relative_to(base):
                raise SourceError(f"{item.uri}: a symbolic link, and follow_symlinks is false: not read")
        try:
            size = file.stat().st_size
            if size > self.config.max_file_bytes:  # grown since the scan: still never read it
                raise SourceError(f"{file}: file is {size:,} bytes, over max_file_bytes="
                                  f"{self.config.max_file_bytes:,}")
            return self._read_regular(file)
        except OSError as e:
            raise SourceError(f"{file}: cannot read ({e.strerror or e}); check it still exists") from e

    def _read_regular(self, file: Path) -> bytes:
        """The bytes of ``file``, a regular file: a pipe or device named ``.txt`` would block or never end.

        Without follow_symlinks the last component is opened with O_NOFOLLOW, so a link swapped in after the
        checks is refused by the system itself.
        """
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
        if not self.config.follow_symlinks and not self._root.is_file():
            flags |= getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(file, flags)
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                raise SourceError(f"{file}: not a regular file (a pipe, socket or device); not read")
            return fh.read()

    def source_uri(self, item: SourceItem) -> str:
        """The ``file://`` URI of the item: the file, plus ``#<id>`` for a record."""
        root = Path(os.path.abspath(self._root))
        if self._root.is_file():
            _, sep, rid = item.uri.partition("#")
            return root.as_uri() + (f"#{rid}" if sep else "")
        return f"{root.as_uri().rstrip('/')}/{item.uri}"

    def _files(self) -> list[tuple[str, Path]]:
        root = self._root
        if root.is_file():
            return [(root.name, root)]  # a file named explicitly is taken whatever include says
        if not root.is_dir():
            raise SourceError(f"{root}: no such file or folder; fix `path` of the files source")
        real_root = Path(os.path.realpath(root))
        found: list[tuple[str, Path]] = []
        # (folder as walked, its path relative to the root with a trailing "/", its real path, the real paths
        # of the folders above it: a folder link back to one of them is a loop)
        stack: list[tuple[Path, str, Path, frozenset[Path]]] = [(root, "", real_root, frozenset({real_root}))]
        while stack:
            folder, prefix, real_folder, above = stack.pop()
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except OSError as e:
                self._fail(prefix.rstrip("/") or ".", f"cannot list the folder: {e.strerror or e}")
                continue
            for entry in entries:
                rel, path = prefix + entry.name, Path(entry.path)
                try:
                    if entry.is_symlink():
                        self._symlink(rel, path, real_root, above, stack, found)
                    elif entry.is_dir(follow_symlinks=False):
                        real = real_folder / entry.name
                        stack.append((path, rel + "/", real, above | {real}))
                    elif self._included(rel):
                        if entry.is_file(follow_symlinks=False):
                            found.append((rel, path))
                        else:
                            self._fail(rel, "not a regular file (a pipe, socket or device); skipped")
                except OSError as e:
                    self._fail(rel, f"cannot read: {e.strerror or e}")
        return sorted(found)

    def _included(self, rel: str) -> bool:
        return any(p.match(rel) for p in self._include) and not self._excluded(rel)

    def _excluded(self, rel: str) -> bool:
        # "drafts/**" excludes the folder "drafts" too (its links are not reported)
        return any(p.match(rel) or p.match(rel + "/") for p in self._exclude)

    def _symlink(self, rel: str, link: Path, real_root: Path, above: frozenset[Path],
                 stack: list[tuple[Path, str, Path, frozenset[Path]]], found: list[tuple[str, Path]]) -> None:
        """Judge one symbolic link: skip it (reported), refuse it (reported), or follow it into the folder."""
        try:
            real: Path | None = Path(os.path.realpath(link, strict=True))
        except (OSError, RuntimeError):  # dangling, or a chain of links that loops
            real = None
        is_dir = real is not None and real.is_dir()
        if not (self._included(rel) if not is_dir else not self._excluded(rel)):
            return  # not something this source would take: nothing to report
        kind = "folder" if is_dir else "file"
        if real is None:
            self._fail(rel, "a broken symbolic link (its target is missing or loops); skipped")
        elif real != real_root and real_root not in real.parents:
            self._fail(rel, f"a symbolic link to {real}, outside the source folder: refused")
        elif not self.config.follow_symlinks:
            self._fail(rel, f"a symbolic link to a {kind}, not followed: set follow_symlinks: true to take links "
                            "that stay inside the folder, or add it to `exclude`")
        elif is_dir:
            if real in above:
                self._fail(rel, f"a symbolic link to {real}, a folder above it (a loop): not followed")
            else:
                stack.append((link, rel + "/", real, above | {real}))
        elif real.is_file():
            found.append((rel, link))
        else:
            self._fail(rel, "a symbolic link to something that is not a regular file; skipped")

    def _load(self, relpath: str, file: Path) -> bytes | None:
        try:
            # The size comes from stat(): a file over the limit is never opened, however big it is.
            size = file.stat().st_size
            if size > self.config.max_file_bytes:
                limit = self.config.max_file_bytes
                self._fail(relpath, f"file is {size:,} bytes, over max_file_bytes={limit:,}; "
                                    "raise max_file_bytes or add the file to `exclude`")
                return None
            return self._read_regular(file)
        except SourceError as e:
            self._fail(relpath, str(e).partition(": ")[2] or str(e))
            return None
        except OSError as e:
            self._fail(relpath, f"cannot read: {e.strerror or e}")
            return None

    def _scan_records(self, relpath: str, suffix: str, data: bytes) -> Iterator[SourceItem]:
        mapping = self._mapping
        rows: Iterable[tuple[str, Any]]
        if suffix != ".parquet" and not data.strip():
            return  # an empty text file of records holds no records; not a failure
        try:
            if suffix == _JSONL:
                yield from self._scan_jsonl(relpath, data)
                return
            if suffix == ".csv":
                text, header = csv_columns(data, relpath, mapping)
                if header and (why := mapping.missing_columns(header)):
                    self._fail(relpath, why)
                    return
                rows = read_csv(text, relpath, mapping)
            elif suffix == ".json":
                rows = read_json(data, relpath)
            else:
                if why := mapping.missing_columns(parquet_columns(data, relpath)):
                    self._fail(relpath, why)
                    return
                rows = read_parquet(data, relpath, mapping)
            if suffix != ".parquet" and (note := decode_text_noted(data, relpath)[1]):
                self._warn(relpath, note)  # every record of the file was read with a guessed encoding
            first: dict[str, str] = {}
            for where, row in rows:
                item = self._record_item(relpath, where, row, first)
                if item is not None:
                    yield item
        except FlightdeckError as e:  # the whole file (or its rest) is unreadable; rows before it stay
            where, _, reason = str(e).partition(": ")
            self._fail(where if where.startswith(relpath) else relpath, reason or str(e))
        except Exception as e:  # a reader's surprise must not stop the scan of the other files
            self._fail(relpath, f"cannot read the records: {type(e).__name__}: {e}")

    def _record_item(self, relpath: str, where: str, row: Any, first: dict[str, str]) -> SourceItem | None:
        if not isinstance(row, dict):
            self._fail(where, f"a record must be an object with named fields, got {type(row).__name__}")
            return None
        try:
            rid, record = self._mapping.record(row)
        except RowError as e:
            self._fail(where, str(e))
            return None
        uri = f"{relpath}#{rid}"
        if uri in first:
            self._fail(where, f"duplicate id {rid!r}, first used at {first[uri]}; ids must be unique")
            return None
        first[uri] = where
        line = json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        self._records[uri] = line
        return SourceItem(uri, content_hash(line), RECORD_MEDIA_TYPE,
                          {RECORD_FIELDS_KEY: self._mapping.record_fields})

    def _scan_jsonl(self, relpath: str, data: bytes) -> Iterator[SourceItem]:
        cfg = self.config
        # Without text_fields/metadata_fields a record is its line, byte for byte (and so is its hash).
        normalise = cfg.text_fields is not None or cfg.metadata_fields is not None
        fields = {"id": cfg.id_field, "title": cfg.title_field, "text": cfg.text_field}
        first_line: dict[str, int] = {}
        first_where: dict[str, str] = {}
        for number, line in enumerate(data.split(b"\n"), start=1):
            line = line.rstrip(b"\r")
            if number == 1 and line.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte-order mark
                line = line[3:]
            if not line.strip():
                continue
            where = f"{relpath}:{number}"
            try:
                record = json.loads(line.decode("utf-8"))
            except UnicodeDecodeError:
                self._fail(where, "not UTF-8; save the file as UTF-8")
                continue
            except json.JSONDecodeError as e:
                self._fail(where, f"not valid JSON ({e.msg} at column {e.colno}); fix or remove the line")
                continue
            except RecursionError:
                self._fail(where, "JSON nested too deeply to read; fix or remove the line")
                continue
            if not isinstance(record, dict):
                self._fail(where, f"a record must be a JSON object, got {type(record).__name__}")
                continue
            if normalise:
                item = self._record_item(relpath, where, record, first_where)
                if item is not None:
                    yield item
                continue
            rid = record.get(cfg.id_field)
            if isinstance(rid, bool) or not isinstance(rid, (str, int)) or str(rid) == "":
                self._fail(where, f"missing id field {cfg.id_field!r} (a string or integer); "
                                  "add one or set id_field")
                continue
            if not isinstance(record.get(cfg.text_field), str):
                self._fail(where, f"missing text field {cfg.text_field!r} (a string); "
                                  "add one or set text_field")
                continue
            uri = f"{relpath}#{rid}"
            if uri in first_line:
                self._fail(where, f"duplicate id {rid!r}, first used on line {first_line[uri]}; "
                                  "ids must be unique")
                continue
            first_line[uri] = number
            self._records[uri] = line
            yield SourceItem(uri, content_hash(line), RECORD_MEDIA_TYPE, {RECORD_FIELDS_KEY: dict(fields)})

    def _fail(self, uri: str, reason: str) -> None:
        self.failures.append(ItemFailure(uri, reason))

    def _warn(self, uri: str, message: str) -> None:
        self.warnings.append(ItemWarning(uri, message))
