"""The ``files`` source: a folder of ``.md``/``.txt``/``.html`` files, or a ``.jsonl`` file of records."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from flightdeck.data.documents import SourceItem, content_hash
from flightdeck.data.parsers.records import RECORD_FIELDS_KEY, RECORD_MEDIA_TYPE
from flightdeck.data.sources.base import ItemFailure
from flightdeck.errors import SourceError

__all__ = ["FilesConfig", "FilesSource", "MEDIA_TYPES", "glob_match"]

#: file suffix -> media type; ``.jsonl`` files hold records instead
MEDIA_TYPES: dict[str, str] = {
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".txt": "text/plain",
    ".html": "text/html",
    ".htm": "text/html",
}
_JSONL = ".jsonl"


class FilesConfig(BaseModel):
    """Options of the ``files`` source.

    ``path`` is a folder (walked recursively) or a single file, e.g. a ``.jsonl`` file of records; the
    caller resolves it to an absolute path. ``include``/``exclude`` are globs on the POSIX path relative
    to the folder, where ``**/`` matches any number of folders, including none.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str
    include: list[str] = ["**/*.md", "**/*.markdown", "**/*.txt", "**/*.html", "**/*.htm", "**/*.jsonl"]
    exclude: list[str] = []
    max_file_bytes: int = Field(50_000_000, gt=0)
    id_field: str = "_id"
    title_field: str = "title"
    text_field: str = "text"

    @field_validator("path")
    @classmethod
    def _path_not_empty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("path is empty; set it to a folder of documents or a .jsonl file")
        return v


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
    ``<path>#<id>`` for records. Items that cannot be delivered (too big, unreadable, a malformed
    record line) are skipped and recorded in ``failures`` instead of stopping the scan.
    """

    def __init__(self, config: FilesConfig) -> None:
        self.config = config
        self.failures: list[ItemFailure] = []
        self._root = Path(config.path)
        self._records: dict[str, bytes] = {}
        self._include = [_glob_regex(p) for p in config.include]
        self._exclude = [_glob_regex(p) for p in config.exclude]

    def scan(self) -> Iterator[SourceItem]:
        """Yield every included file (or record) in sorted path order, with its content hash."""
        self.failures = []
        self._records = {}
        for relpath, file in self._files():
            suffix = Path(relpath).suffix.lower()
            if suffix != _JSONL and suffix not in MEDIA_TYPES:
                self._fail(relpath, f"unsupported file type {suffix or '(none)'!r}; supported: "
                                    f"{', '.join(sorted([*MEDIA_TYPES, _JSONL]))}; narrow `include`")
                continue
            data = self._load(relpath, file)
            if data is None:
                continue
            if suffix == _JSONL:
                yield from self._scan_records(relpath, data)
            else:
                yield SourceItem(relpath, content_hash(data), MEDIA_TYPES[suffix])

    def read(self, item: SourceItem) -> bytes:
        """The bytes of a listed file, or the JSON line of a listed record."""
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
        try:
            return file.read_bytes()
        except OSError as e:
            raise SourceError(f"{file}: cannot read ({e.strerror or e}); check it still exists") from e

    def _files(self) -> list[tuple[str, Path]]:
        root = self._root
        if root.is_file():
            return [(root.name, root)]  # a file named explicitly is taken whatever include says
        if not root.is_dir():
            raise SourceError(f"{root}: no such file or folder; fix `path` of the files source")
        found: list[tuple[str, Path]] = []
        for dirpath, _dirnames, filenames in os.walk(root):
            for name in filenames:
                file = Path(dirpath, name)
                rel = file.relative_to(root).as_posix()
                if (any(p.match(rel) for p in self._include) and not any(p.match(rel) for p in self._exclude)
                        and file.is_file()):
                    found.append((rel, file))
        return sorted(found)

    def _load(self, relpath: str, file: Path) -> bytes | None:
        try:
            size = file.stat().st_size
            if size > self.config.max_file_bytes:
                limit = self.config.max_file_bytes
                self._fail(relpath, f"file is {size:,} bytes, over max_file_bytes={limit:,}; "
                                    "raise max_file_bytes or add the file to `exclude`")
                return None
            return file.read_bytes()
        except OSError as e:
            self._fail(relpath, f"cannot read: {e.strerror or e}")
            return None

    def _scan_records(self, relpath: str, data: bytes) -> Iterator[SourceItem]:
        cfg = self.config
        fields = {"id": cfg.id_field, "title": cfg.title_field, "text": cfg.text_field}
        first_line: dict[str, int] = {}
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
            if not isinstance(record, dict):
                self._fail(where, f"a record must be a JSON object, got {type(record).__name__}")
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
