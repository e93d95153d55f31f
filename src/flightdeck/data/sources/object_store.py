"""The ``s3`` and ``gcs`` sources: the objects under a bucket prefix, listed and read through fsspec.

One implementation serves both stores (:class:`ObjectStoreSource`); each store only says how to open its
fsspec filesystem (s3fs, gcsfs) and which listing field tells that an object changed.

A scan lists the objects once (``fs.find(prefix, detail=True)``) and never reads a document's body: the
item's ``content_hash`` is the SHA-256 of the store's own change signal, the ETag for S3 and the MD5
(else the generation) for GCS. So an unchanged bucket costs one listing, a changed object is the only one
read again, and a deleted one disappears from the scan (and so from the dataset). Files of records
(``.jsonl``, ``.csv``, ``.json``, ``.parquet``) are the exception: their rows are the items, so their
bodies are read at scan time and split by the ``files`` source's own record code, with the same column
mapping settings (``id_field``, ``title_field``, ``text_field``, ``text_fields``, ``metadata_fields``).

A record file is read only when it changed: :attr:`ObjectStoreSource.scan_cache` keeps, per key, the change
signal and what the split gave (record ids and hashes, their metadata, the rows it refused), and the ingest
step keeps that cache in the workspace between runs. An object whose signal (and the column mapping) is
unchanged is listed from the cache without a download; its records' bytes are fetched only if the pipeline
asks for one of them (after a pipeline change), one download per object.

Item URIs are keys relative to the prefix (``guide/install.md``, ``rows.jsonl#42``); citations show the
full object URL (``s3://bucket/docs/guide/install.md``). A bucket that cannot be listed (down, wrong
endpoint, no such bucket, no access) fails the scan with :class:`~flightdeck.errors.SourceError`, after
``retries`` attempts for transient errors, before anything is written.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from flightdeck.core import RetryPolicy
from flightdeck.data.documents import SourceItem, content_hash
from flightdeck.data.parsers.records import RECORD_MEDIA_TYPE
from flightdeck.data.sources.base import ItemFailure
from flightdeck.data.sources.files import MEDIA_TYPES, RECORD_SUFFIXES, glob_match
from flightdeck.errors import SourceError
from flightdeck.registry.lookup import optional_import
from flightdeck.spec.resolve import ENV_REF

__all__ = ["ObjectStoreConfig", "ObjectStoreSource", "S3Config", "S3Source", "GcsConfig", "GcsSource"]

_T = TypeVar("_T")

# Documents and record files, as for the files source; images only when included on purpose (OCR).
_DEFAULT_INCLUDE = [f"**/*{suffix}" for suffix, media in MEDIA_TYPES.items() if not media.startswith("image/")] \
    + [f"**/*{suffix}" for suffix in RECORD_SUFFIXES]
# The longest wait between two attempts, whatever `backoff` and the attempt number say.
_MAX_BACKOFF_S = 30.0
# Facts, not transient failures: retrying cannot help.
_NOT_TRANSIENT = (FileNotFoundError, PermissionError, IsADirectoryError, SourceError)
# Part of every scan-cache key: raise it when record splitting changes what it yields for the same bytes.
_SCAN_CACHE_FORMAT = 1


class _ObjectUnreadable(SourceError):
    """One object is gone or forbidden: a fact about that item, unlike a store that does not answer."""


def _has_env_ref(value: str | None) -> bool:
    return bool(value) and ENV_REF.search(value or "") is not None


class ObjectStoreConfig(BaseModel):
    """Options shared by the ``s3`` and ``gcs`` sources.

    ``url`` is ``<scheme>://bucket`` or ``<scheme>://bucket/prefix``; every object under the prefix whose
    key (relative to the prefix) matches one of ``include`` and none of ``exclude`` is an item (globs as
    in the files source: ``*``, ``?``, ``[...]`` and ``**/``). ``max_file_bytes`` skips bigger objects
    from their listed size, without downloading them. ``endpoint_url`` points at an S3- or GCS-compatible
    server (MinIO, a local emulator); ``anon`` connects without credentials (public buckets).
    ``retries`` transient failures (connection refused, timeouts, 5xx) are retried after ``backoff``
    seconds, doubled each time (at most 30 s); ``timeout`` bounds each request, in seconds.

    Record files use ``id_field``, ``title_field``, ``text_field`` (or ``text_fields``) and
    ``metadata_fields`` exactly as the files source does.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    scheme: ClassVar[str] = ""

    url: str
    include: list[str] = _DEFAULT_INCLUDE
    exclude: list[str] = []
    max_file_bytes: int = Field(50_000_000, gt=0)
    endpoint_url: str | None = None
    anon: bool = False
    retries: int = Field(3, ge=0, le=20)
    backoff: float = Field(0.5, ge=0)
    timeout: float = Field(30.0, gt=0)
    id_field: str = "_id"
    title_field: str = "title"
    text_field: str = "text"
    text_fields: list[str] | None = None
    metadata_fields: list[str] | None = None

    @field_validator("url")
    @classmethod
    def _url_names_a_bucket(cls, v: str) -> str:
        if _has_env_ref(v):
            return v  # checked again once the spec's ${ENV} references are resolved
        prefix = f"{cls.scheme}://"
        if not v.startswith(prefix) or not v[len(prefix):].split("/", 1)[0]:
            raise ValueError(f"url must look like {prefix}bucket/prefix, got {v!r}")
        return v

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint_is_http(cls, v: str | None) -> str | None:
        if v is not None and not _has_env_ref(v) and not v.startswith(("http://", "https://")):
            raise ValueError(f"endpoint_url must be an http:// or https:// URL, got {v!r}")
        return v

    @property
    def bucket(self) -> str:
        return self.url.split("://", 1)[1].split("/", 1)[0]

    @property
    def prefix(self) -> str:
        """The key prefix, without leading or trailing slashes ("" for the whole bucket)."""
        rest = self.url.split("://", 1)[1]
        return rest.split("/", 1)[1].strip("/") if "/" in rest else ""

    def files_settings(self) -> dict[str, Any]:
        """The settings of the files source that splits record files the same way."""
        return {"id_field": self.id_field, "title_field": self.title_field, "text_field": self.text_field,
                "text_fields": self.text_fields, "metadata_fields": self.metadata_fields,
                "max_file_bytes": self.max_file_bytes}


class S3Config(ObjectStoreConfig):
    """Options of the ``s3`` source (see :class:`ObjectStoreConfig`).

    ``key``/``secret`` (and ``session_token`` for temporary credentials) are the access key, written as
    ``${ENV}`` references in the spec; left out, the usual AWS chain applies (environment, profile,
    instance role). ``region`` is the bucket's region when the endpoint needs it.
    """

    scheme: ClassVar[str] = "s3"

    key: SecretStr | None = None  # an access key id is no password, but it names the account: kept out of sight too
    secret: SecretStr | None = None
    session_token: SecretStr | None = None
    region: str | None = None

    @model_validator(mode="after")
    def _credentials_are_whole(self) -> S3Config:
        if (self.key is None) != (self.secret is None):
            raise ValueError("set both key and secret (e.g. key: ${AWS_ACCESS_KEY_ID}, "
                             "secret: ${AWS_SECRET_ACCESS_KEY}), or neither to use the AWS credential chain")
        if self.anon and self.key is not None:
            raise ValueError("anon: true connects without credentials; remove key/secret or anon")
        return self


class GcsConfig(ObjectStoreConfig):
    """Options of the ``gcs`` source (see :class:`ObjectStoreConfig`).

    ``token`` is what gcsfs accepts: the path of a service-account JSON file, ``google_default`` or
    ``cloud``, or a raw access token (so it is kept as a secret); left out, Google's default credentials
    apply (``anon: true`` for public buckets).
    ``project`` is the billing project, when the bucket needs one.
    """

    scheme: ClassVar[str] = "gs"

    token: SecretStr | None = None
    project: str | None = None

    @field_validator("url", mode="before")
    @classmethod
    def _accept_gcs_scheme(cls, v: Any) -> Any:
        # fsspec knows both spellings; gs:// is the one gsutil and the console show
        return "gs://" + v[len("gcs://"):] if isinstance(v, str) and v.startswith("gcs://") else v

    @model_validator(mode="after")
    def _anon_or_token(self) -> GcsConfig:
        if self.anon and self.token is not None:
            raise ValueError("anon: true connects without credentials; remove token or anon")
        return self


class ObjectStoreSource:
    """Lists and reads the objects under a bucket prefix (see the module docstring).

    Subclasses say how to open the fsspec filesystem (:meth:`_open`) and which listing fields signal a
    change (:meth:`_signal`).
    """

    extra: ClassVar[str] = ""
    library: ClassVar[str] = ""

    def __init__(self, config: ObjectStoreConfig) -> None:
        self.config = config
        self.failures: list[ItemFailure] = []
        #: What the record files split into, per key (JSON): set it before a scan to skip downloading the
        #: unchanged ones; each scan replaces it with the entries of the record files it listed.
        self.scan_cache: dict[str, Any] = {}
        self._fs: Any = None
        self._records: dict[str, bytes] = {}
        self._record_objects: dict[str, str] = {}  # record uri -> key, for records listed from the cache
        self._objects_read: set[str] = set()  # keys of those read since, when the pipeline asked for a record
        self._root = f"{config.bucket}/{config.prefix}".rstrip("/")
        self._paths: dict[str, str] = {}  # uri -> bucket/key, from the last listing

    # the source protocol ---------------------------------------------------------------------------------
    def scan(self) -> Iterator[SourceItem]:
        """Yield every included object (or record of a record file) in key order, with its change hash."""
        self.failures = []
        self._records = {}
        self._record_objects = {}
        self._objects_read = set()
        previous = self.scan_cache if isinstance(self.scan_cache, dict) else {}
        self.scan_cache = {}
        listing = self._list()
        supported = ", ".join(sorted([*MEDIA_TYPES, *RECORD_SUFFIXES]))
        for rel, info in listing:
            suffix = PurePosixPath(rel).suffix.lower()
            if suffix not in MEDIA_TYPES and suffix not in RECORD_SUFFIXES:
                self._fail(rel, f"unsupported file type {suffix or '(none)'!r}; supported: {supported}; "
                                "narrow `include`")
                continue
            size = int(info.get("size") or 0)
            if size > self.config.max_file_bytes:
                self._fail(rel, f"object is {size:,} bytes, over max_file_bytes={self.config.max_file_bytes:,}; "
                                "raise max_file_bytes or add the key to `exclude`")
                continue
            signal = self._signal(info)
            if suffix in RECORD_SUFFIXES:
                yield from self._scan_record_file(rel, suffix, signal, size, previous.get(rel))
                continue
            if signal is None:
                self._fail(rel, "the listing gives no ETag, generation or checksum for this object, so a change "
                                "could not be detected; the store does not look like S3 or GCS")
                continue
            yield SourceItem(rel, content_hash(f"{self.config.scheme}:{signal}:{size}"), MEDIA_TYPES[suffix])

    def read(self, item: SourceItem) -> bytes:
        """The bytes of a listed object, or the JSON of a listed record."""
        if item.media_type == RECORD_MEDIA_TYPE and "#" in item.uri:
            rel = self._record_objects.get(item.uri)
            if rel is not None and item.uri not in self._records:
                if rel not in self._objects_read:
                    # Listed from the scan cache: download and split the object once, for all of its records.
                    data = self._read_object(rel)
                    self._records.update(self._split_records(rel, PurePosixPath(rel).suffix.lower(), data)[0])
                    self._objects_read.add(rel)
                if item.uri not in self._records:
                    raise SourceError(f"{item.uri}: no longer in {self.config.scheme}://{self._key_path(rel)}; "
                                      "run again to drop it")
            try:
                return self._records[item.uri]
            except KeyError:
                raise SourceError(f"{item.uri}: not a record of the last scan of {self.config.url}; "
                                  "run scan() before read()") from None
        return self._read_object(item.uri)

    def source_uri(self, item: SourceItem) -> str:
        """The object's URL (``s3://bucket/key``), plus ``#<id>`` for a record."""
        rel, sep, rid = item.uri.partition("#")
        return f"{self.config.scheme}://{self._key_path(rel)}" + (f"#{rid}" if sep else "")

    # listing and reading ---------------------------------------------------------------------------------
    def _list(self) -> list[tuple[str, dict[str, Any]]]:
        fs = self._filesystem()

        def find() -> dict[str, dict[str, Any]]:
            fs.invalidate_cache()  # a long-lived source must see today's bucket, not the last listing
            return fs.find(self._root, detail=True)

        try:
            found = self._retry("listing", find)
        except FileNotFoundError as e:
            raise SourceError(f"{self._where()}: no such bucket ({e}); check the bucket name in `url`"
                              + (" and `endpoint_url`" if self.config.endpoint_url else "")) from e
        except PermissionError as e:
            raise SourceError(f"{self._where()}: access denied ({e}); check the credentials") from e
        self._paths = {}
        out: list[tuple[str, dict[str, Any]]] = []
        for name, info in found.items():
            if info.get("type") == "directory" or name.endswith("/"):
                continue  # a "folder" placeholder object, not a document
            if name == self._root:  # the url names one object
                rel = name.rsplit("/", 1)[-1]
            elif name.startswith(self._root + "/"):
                rel = name[len(self._root) + 1:]
            else:
                continue
            self._paths[rel] = name
            if (any(glob_match(rel, p) for p in self.config.include)
                    and not any(glob_match(rel, p) for p in self.config.exclude)):
                out.append((rel, info))
        return sorted(out, key=lambda kv: kv[0])

    def _read_object(self, rel: str) -> bytes:
        if rel.startswith("/") or ".." in PurePosixPath(rel).parts:
            raise SourceError(f"{rel}: not a key under {self.config.url}; use a URI from scan()")
        fs = self._filesystem()
        path = self._key_path(rel)
        limit = self.config.max_file_bytes
        try:
            # Never download more than the limit, even from an object that grew since the scan.
            data: bytes = self._retry(f"reading {rel}", lambda: fs.cat_file(path, start=0, end=limit + 1))
        except FileNotFoundError as e:
            raise _ObjectUnreadable(f"{self.config.scheme}://{path}: no longer exists; run again to drop it") from e
        except PermissionError as e:
            raise _ObjectUnreadable(f"{self.config.scheme}://{path}: access denied ({e}); check the credentials") from e
        if len(data) > limit:
            raise SourceError(f"{self.config.scheme}://{path}: object is over max_file_bytes={limit:,}")
        return data

    def _scan_record_file(self, rel: str, suffix: str, signal: str | None, size: int,
                          cached: Any) -> Iterator[SourceItem]:
        # The key says which bytes, split how: the same object under the same mapping splits the same way.
        key = None if signal is None else content_hash(json.dumps(
            [_SCAN_CACHE_FORMAT, self.config.scheme, self._root, rel, signal, size, self.config.files_settings()],
            sort_keys=True))
        if key is not None and isinstance(cached, dict) and cached.get("key") == key:
            try:
                items = [SourceItem(rel + suffix_, chash, RECORD_MEDIA_TYPE, dict(cached["metadata"]))
                         for suffix_, chash in cached["items"]]
                failures = [ItemFailure(uri, reason) for uri, reason in cached["failures"]]
            except (KeyError, TypeError, ValueError):
                pass  # an entry this code did not write: read the object instead
            else:
                self.scan_cache[rel] = cached
                self.failures.extend(failures)
                self._record_objects.update((item.uri, rel) for item in items)
                yield from items
                return
        try:
            data = self._read_object(rel)
        except _ObjectUnreadable as e:
            self._fail(rel, str(e))
            return
        # Any other error propagates: after the retries the store is down, and reporting the file as
        # failed would read as all of its records having been deleted.
        records, items, failures = self._split_records(rel, suffix, data)
        self._records.update(records)
        self.failures.extend(failures)
        metadata = [item.metadata for item in items]
        # The files source gives every record of a file the same metadata (its field names): kept once.
        if key is not None and all(m == metadata[0] for m in metadata):
            self.scan_cache[rel] = {"key": key, "metadata": metadata[0] if metadata else {},
                                    "items": [[item.uri[len(rel):], item.content_hash] for item in items],
                                    "failures": [[f.uri, f.reason] for f in failures]}
        yield from items

    def _split_records(self, rel: str, suffix: str,
                       data: bytes) -> tuple[dict[str, bytes], list[SourceItem], list[ItemFailure]]:
        """The records of one record file: their bytes by uri, their items, and the rows refused."""
        # The files source owns record splitting (formats, column mapping, per-row errors); it works on
        # files, so the body goes through a temporary file with a fixed name, replaced by the key below.
        from flightdeck.data.sources.files import FilesConfig, FilesSource

        local_name = f"records{suffix}"
        with tempfile.TemporaryDirectory(prefix="flightdeck-records-") as tmp:
            local = Path(tmp, local_name)
            local.write_bytes(data)
            splitter = FilesSource(FilesConfig(path=str(local), **self.config.files_settings()))
            found = list(splitter.scan())
            records = {rel + item.uri[len(local_name):]: splitter.read(item) for item in found}
        failures = []
        for failure in splitter.failures:
            where = failure.uri
            where = rel + where[len(local_name):] if where.startswith(local_name) else f"{rel}: {where}"
            failures.append(ItemFailure(where, failure.reason))
        return records, [replace(item, uri=rel + item.uri[len(local_name):]) for item in found], failures

    def _retry(self, what: str, call: Callable[[], _T]) -> _T:
        attempts = self.config.retries + 1
        policy = RetryPolicy(attempts, self.config.backoff, max_delay=_MAX_BACKOFF_S)
        try:
            return policy.run(call, transient=lambda e: not isinstance(e, _NOT_TRANSIENT))
        except _NOT_TRANSIENT:
            raise
        except Exception as last:  # the libraries raise botocore, aiohttp and HTTP errors alike
            raise SourceError(f"{self._where()}: {what} failed after {attempts} attempt(s): "
                              f"{type(last).__name__}: {last}; check that the endpoint is reachable and the "
                              "bucket exists (and the credentials), or raise `retries`") from last

    def _where(self) -> str:
        endpoint = self.config.endpoint_url or f"the default {self.library} endpoint"
        return f"bucket {self.config.bucket!r} at {endpoint}"

    def _key_path(self, rel: str) -> str:
        """``bucket/key`` of the object whose uri is ``rel`` (a url may name one object: its uri is its name)."""
        return self._paths.get(rel) or f"{self._root}/{rel}"

    def _filesystem(self) -> Any:
        if self._fs is None:
            self._fs = self._open()
        return self._fs

    def _fail(self, uri: str, reason: str) -> None:
        self.failures.append(ItemFailure(uri, reason))

    # what each store says --------------------------------------------------------------------------------
    def _open(self) -> Any:
        raise NotImplementedError

    def _signal(self, info: dict[str, Any]) -> str | None:
        raise NotImplementedError


class S3Source(ObjectStoreSource):
    """The ``s3`` source: objects in an S3 (or S3-compatible) bucket, through s3fs.

    The change signal is the object's ETag (the MD5 of a single-part upload, a digest of the parts'
    MD5s for a multipart one): it changes whenever the bytes do, and is in every listing.
    """

    extra = "s3"
    library = "s3fs"
    config: S3Config

    def __init__(self, config: S3Config) -> None:
        super().__init__(config)

    def _open(self) -> Any:
        s3fs = optional_import("s3fs", self.extra, f"source {self.extra!r}")
        cfg = self.config
        client_kwargs: dict[str, Any] = {}
        if cfg.endpoint_url:
            client_kwargs["endpoint_url"] = cfg.endpoint_url
        if cfg.region:
            client_kwargs["region_name"] = cfg.region
        fs = s3fs.S3FileSystem(
            anon=cfg.anon, key=cfg.key.get_secret_value() if cfg.key else None,
            secret=cfg.secret.get_secret_value() if cfg.secret else None,
            token=cfg.session_token.get_secret_value() if cfg.session_token else None,
            client_kwargs=client_kwargs, skip_instance_cache=True,
            # One attempt per call: this source retries with its own `retries` and `backoff`.
            config_kwargs={"connect_timeout": cfg.timeout, "read_timeout": cfg.timeout,
                           "retries": {"total_max_attempts": 1}})
        fs.retries = 1
        return fs

    def _signal(self, info: dict[str, Any]) -> str | None:
        etag = info.get("ETag") or info.get("etag")
        return f"etag:{str(etag).strip(chr(34))}" if etag else None


def _single_try_gcs_class(base: Any) -> Any:
    """gcsfs's core filesystem (``base``, ``gcsfs.core.GCSFileSystem``), making one attempt per request.

    gcsfs wraps its request method in 6 retries with sleeps of up to 32 s, fixed when the class is
    defined; that would make `retries` and `backoff` meaningless (and a down endpoint a half-minute wait
    per attempt), so this subclass calls the undecorated method. The core class (not gcsfs's default
    "extended" one) is used because the extended one first asks a gRPC control API for the bucket's
    layout, which emulators and S3-style endpoints do not serve (a 60 s timeout per bucket).
    """
    raw = getattr(base._request, "__wrapped__", None)
    if raw is None:  # a gcsfs without the decorator: its own retries apply
        return base

    class _SingleTryGCSFileSystem(base):  # type: ignore[misc, valid-type]
        _request = raw

    return _SingleTryGCSFileSystem


class GcsSource(ObjectStoreSource):
    """The ``gcs`` source: objects in a Google Cloud Storage bucket, through gcsfs.

    The change signal is the object's MD5 (so that re-uploading the same bytes changes nothing),
    else its generation (composite objects have no MD5), else its ETag or CRC32C.
    """

    extra = "gcs"
    library = "gcsfs"
    config: GcsConfig

    def __init__(self, config: GcsConfig) -> None:
        super().__init__(config)

    def _open(self) -> Any:
        core = optional_import("gcsfs.core", self.extra, f"source {self.extra!r}")
        cls = _single_try_gcs_class(core.GCSFileSystem)
        cfg = self.config
        token = cfg.token.get_secret_value() if cfg.token is not None else None
        kwargs: dict[str, Any] = {"token": "anon" if cfg.anon else token, "requests_timeout": cfg.timeout,
                                  "skip_instance_cache": True}
        if cfg.endpoint_url:
            kwargs["endpoint_url"] = cfg.endpoint_url
        if cfg.project:
            kwargs["project"] = cfg.project
        return cls(**kwargs)

    def _signal(self, info: dict[str, Any]) -> str | None:
        for field in ("md5Hash", "generation", "etag", "crc32c"):
            if info.get(field):
                return f"{field}:{info[field]}"
        return None
