"""The ``s3`` and ``gcs`` sources against real servers started here: moto's S3 server and
gcp-storage-emulator, both on 127.0.0.1 with a free port.

The same scenario runs on both stores: a first run ingests everything, a run over an unchanged bucket
does nothing, changing one object re-parses only it, deleting one removes it, and a bucket that is down
fails the run with a clear error and leaves the previous dataset version current.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from typer.testing import CliRunner

from flightdeck import Project
from flightdeck.cli.main import app
from flightdeck.data.documents import SourceItem
from flightdeck.data.parsers import parse
from flightdeck.data.parsers.records import RECORD_FIELDS_KEY
from flightdeck.data.sources.base import Source
from flightdeck.data.sources.object_store import GcsConfig, GcsSource, S3Config, S3Source
from flightdeck.errors import MissingDependencyError, SourceError
from flightdeck.pipeline.assembly import Assembly
from flightdeck.registry.lookup import installed
from flightdeck.testing import FakeEmbedder
from needs import need

pytestmark = pytest.mark.integration

DOCS = {
    "guide/install.md": "# Installing Widgets\n\nRun `widget install` in a terminal.\n\n## Requirements\n\n"
                        "A widget needs a frame, two sprockets and a license key.\n",
    "guide/care.html": "<html><body><h1>Caring for widgets</h1><p>Clean a widget with a soft cloth once a "
                       "week.</p></body></html>",
    "notes.txt": "Widget colours: red, blue and green.\n",
    "rows.jsonl": json.dumps({"_id": "r1", "title": "Sprockets", "text": "Sprockets come in pairs."}) + "\n"
                  + json.dumps({"_id": "r2", "title": "Frames", "text": "Frames are made of oak."}) + "\n",
}

SPEC = """\
project: lake-test
scoping: {{use_case: rag, objective: retrieval_system}}
data:
  sources:
    - {source}
  chunking: {{provider: recursive, size: 64, overlap: 16}}
retrieval:
  embedding_model: sentence_transformers
  vector_database: faiss
  system: [hybrid_search]
  search: {{mode: hybrid, k: 5}}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------------------------------------------
# servers (one per module) and stores (a fresh bucket per test)


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    need("dev", "moto")  # moto's S3 server stands in for S3 here
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="module")
def gcs_endpoint() -> Iterator[str]:
    need("dev", "gcp_storage_emulator")  # stands in for Google Cloud Storage here
    from gcp_storage_emulator.server import create_server

    port = _free_port()
    server = create_server("127.0.0.1", port, in_memory=True)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


class Store:
    """A fresh bucket on one of the servers, written with the store's own client."""

    provider: str
    scheme: str

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.bucket = f"fd-{uuid.uuid4().hex[:12]}"

    def put(self, key: str, data: bytes | str) -> None:
        raise NotImplementedError

    def delete(self, key: str) -> None:
        raise NotImplementedError

    def settings(self, **extra: Any) -> dict[str, Any]:
        raise NotImplementedError

    def source(self, **extra: Any) -> S3Source | GcsSource:
        raise NotImplementedError


class S3Store(Store):
    provider, scheme = "s3", "s3"

    def __init__(self, endpoint: str) -> None:
        super().__init__(endpoint)
        import boto3

        self.client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="test-key",
                                   aws_secret_access_key="test-secret", region_name="us-east-1")
        self.client.create_bucket(Bucket=self.bucket)

    def put(self, key: str, data: bytes | str) -> None:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data.encode() if isinstance(data, str) else data)

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=key)

    def settings(self, **extra: Any) -> dict[str, Any]:
        return {"url": f"s3://{self.bucket}/docs", "endpoint_url": self.endpoint, "key": "test-key",
                "secret": "test-secret", "retries": 1, "backoff": 0.0, "timeout": 5, **extra}

    def source(self, **extra: Any) -> S3Source:
        return S3Source(S3Config(**self.settings(**extra)))


class GcsStore(Store):
    provider, scheme = "gcs", "gs"

    def __init__(self, endpoint: str) -> None:
        super().__init__(endpoint)
        from gcsfs.core import GCSFileSystem

        self.fs = GCSFileSystem(endpoint_url=endpoint, token="anon", project="test", skip_instance_cache=True)
        self.fs.mkdir(self.bucket)

    def put(self, key: str, data: bytes | str) -> None:
        self.fs.pipe_file(f"{self.bucket}/{key}", data.encode() if isinstance(data, str) else data)

    def delete(self, key: str) -> None:
        self.fs.rm_file(f"{self.bucket}/{key}")

    def settings(self, **extra: Any) -> dict[str, Any]:
        return {"url": f"gs://{self.bucket}/docs", "endpoint_url": self.endpoint, "anon": True,
                "retries": 1, "backoff": 0.0, "timeout": 5, **extra}

    def source(self, **extra: Any) -> GcsSource:
        return GcsSource(GcsConfig(**self.settings(**extra)))


@pytest.fixture(params=["s3", "gcs"])
def store(request: pytest.FixtureRequest) -> Store:
    # the store's own library first (the product's extra), then the server standing in for it (the test's)
    if request.param == "s3":
        need("s3", "s3fs")
        return S3Store(request.getfixturevalue("moto_endpoint"))
    need("gcs", "gcsfs")
    return GcsStore(request.getfixturevalue("gcs_endpoint"))


def _fill(store: Store) -> None:
    for rel, body in DOCS.items():
        store.put(f"docs/{rel}", body)
    store.put("docsX/outside-the-prefix.md", "# Not this one\n\nIt is under another prefix.")
    store.put("other/readme.md", "# Not this one either\n")


def _project(root: Path) -> tuple[Project, FakeEmbedder]:
    project = Project.load(root)
    fake = FakeEmbedder()
    project.use(embedder=fake)  # the pipeline and the source are under test, not the model
    return project, fake


def _write_spec(root: Path, source: dict[str, Any]) -> None:
    (root / "flightdeck.yaml").write_text(SPEC.format(source=json.dumps(source)), encoding="utf-8")


def _steps(summary: Any) -> dict[str, Any]:
    return {s.step: s for s in summary.steps}


def _db(root: Path) -> sqlite3.Connection:
    return sqlite3.connect(root / ".flightdeck" / "metadata.db")


# ------------------------------------------------------------------------------------------------------
# the scenario, end to end through a Project, on both stores


@pytest.mark.exercises("data.sources.data_lakes")
def test_incremental_runs_over_a_bucket(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fill(store)
    source = {"provider": store.provider, **store.settings()}
    if store.provider == "s3":  # credentials come from the environment, as a real spec writes them
        monkeypatch.setenv("FD_TEST_S3_KEY", "test-key")
        monkeypatch.setenv("FD_TEST_S3_SECRET", "test-secret")
        source.update(key="${FD_TEST_S3_KEY}", secret="${FD_TEST_S3_SECRET}")
    _write_spec(tmp_path, source)

    project, fake = _project(tmp_path)
    ingest = _steps(project.run())["ingest"]
    assert ingest.counts["documents"] == 5 and ingest.counts["parsed"] == 5 and ingest.counts["failed"] == 0
    label = store.provider  # a source without `name` is labelled by its provider
    with _db(tmp_path) as db:
        docs = dict(db.execute("select id, source_uri from documents").fetchall())
    assert docs == {
        f"{label}/guide/care.html": f"{store.scheme}://{store.bucket}/docs/guide/care.html",
        f"{label}/guide/install.md": f"{store.scheme}://{store.bucket}/docs/guide/install.md",
        f"{label}/notes.txt": f"{store.scheme}://{store.bucket}/docs/notes.txt",
        f"{label}/rows.jsonl#r1": f"{store.scheme}://{store.bucket}/docs/rows.jsonl#r1",
        f"{label}/rows.jsonl#r2": f"{store.scheme}://{store.bucket}/docs/rows.jsonl#r2",
    }
    hits = project.search("soft cloth", mode="keyword").hits
    assert hits and hits[0].document_id == f"{label}/guide/care.html"
    assert hits[0].source_uri == f"{store.scheme}://{store.bucket}/docs/guide/care.html"
    assert fake.embedded_texts

    # nothing changed: every step is skipped, nothing is parsed or embedded
    again, fake2 = _project(tmp_path)
    assert [s.status for s in again.run().steps] == ["skipped"] * 3
    assert fake2.embedded_texts == []

    # one object changed: only it is parsed and embedded again
    store.put("docs/notes.txt", "Widget colours now include purple and orange.\n")
    again, fake3 = _project(tmp_path)
    ingest = _steps(again.run())["ingest"]
    assert ingest.counts["parsed"] == 1 and ingest.counts["unchanged"] == 4
    assert len(fake3.embedded_texts) == 1 and "purple" in fake3.embedded_texts[0]

    # one object deleted, one record changed: the object's document goes, the record is re-parsed
    store.delete("docs/guide/care.html")
    store.put("docs/rows.jsonl", DOCS["rows.jsonl"].replace("made of oak", "made of ash"))
    again, _ = _project(tmp_path)
    ingest = _steps(again.run())["ingest"]
    assert ingest.counts["removed"] == 1 and ingest.counts["parsed"] == 1 and ingest.counts["documents"] == 4
    with _db(tmp_path) as db:
        assert db.execute("select count(*) from chunks where document_id like '%care.html'").fetchone()[0] == 0
        (text,) = db.execute(f"select text from chunks where document_id = '{label}/rows.jsonl#r2'").fetchone()
    assert "ash" in text
    assert all(h.document_id != f"{label}/guide/care.html" for h in again.search("soft cloth").hits)


def test_a_bucket_that_goes_down_fails_the_run_and_keeps_the_last_version(store: Store, tmp_path: Path) -> None:
    _fill(store)
    _write_spec(tmp_path, {"provider": store.provider, **store.settings()})
    project, _ = _project(tmp_path)
    project.run()
    version = project.workspace.get_state("current_dataset")
    with _db(tmp_path) as db:
        chunks_before = db.execute("select count(*) from chunks").fetchone()[0]

    down = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    _write_spec(tmp_path, {"provider": store.provider, **store.settings(endpoint_url=down)})
    again, _ = _project(tmp_path)
    with pytest.raises(SourceError) as err:
        again.run()
    message = str(err.value)
    assert f"bucket {store.bucket!r}" in message and down in message and "2 attempt(s)" in message
    assert again.workspace.get_state("current_dataset") == version
    with _db(tmp_path) as db:
        assert db.execute("select count(*) from chunks").fetchone()[0] == chunks_before


# ------------------------------------------------------------------------------------------------------
# the source on its own


def test_sources_satisfy_the_protocol(store: Store) -> None:
    assert isinstance(store.source(), Source)


def test_scan_lists_without_reading_bodies(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    _fill(store)
    source = store.source()
    bodies_read: list[str] = []
    original = source._read_object
    monkeypatch.setattr(source, "_read_object", lambda rel: bodies_read.append(rel) or original(rel))
    items = list(source.scan())
    assert [i.uri for i in items] == ["guide/care.html", "guide/install.md", "notes.txt", "rows.jsonl#r1",
                                      "rows.jsonl#r2"]
    assert [i.media_type for i in items[:3]] == ["text/html", "text/markdown", "text/plain"]
    assert bodies_read == ["rows.jsonl"]  # only the record file, whose rows are the items
    assert source.failures == []


def test_hashes_follow_the_store_change_signal(store: Store) -> None:
    _fill(store)
    first = {i.uri: i.content_hash for i in store.source().scan()}
    store.put("docs/guide/install.md", DOCS["guide/install.md"])  # the same bytes again
    second = {i.uri: i.content_hash for i in store.source().scan()}
    assert second == first  # S3's ETag and GCS's md5Hash are digests of the bytes: no change, no work
    store.put("docs/guide/install.md", "# Installing\n\nChanged.\n")
    third = {i.uri: i.content_hash for i in store.source().scan()}
    assert third["guide/install.md"] != first["guide/install.md"]
    assert {k: v for k, v in third.items() if k != "guide/install.md"} == \
        {k: v for k, v in first.items() if k != "guide/install.md"}


def test_read_and_parse_items(store: Store) -> None:
    _fill(store)
    source = store.source()
    items = {i.uri: i for i in source.scan()}
    assert source.read(items["notes.txt"]) == DOCS["notes.txt"].encode()
    doc = parse(items["guide/install.md"], source.read(items["guide/install.md"]))
    assert doc.title == "Installing Widgets"
    record = parse(items["rows.jsonl#r2"], source.read(items["rows.jsonl#r2"]))
    assert record.title == "Frames" and "oak" in record.text
    assert source.source_uri(items["rows.jsonl#r2"]) == f"{store.scheme}://{store.bucket}/docs/rows.jsonl#r2"
    store.delete("docs/notes.txt")  # gone between the scan and the read: an error naming the object
    with pytest.raises(SourceError, match=f"{store.scheme}://{store.bucket}/docs/notes.txt: no longer exists"):
        source.read(items["notes.txt"])


def test_include_exclude_and_limits_report_what_was_skipped(store: Store) -> None:
    _fill(store)
    store.put("docs/big.txt", "x" * 5_000)
    store.put("docs/archive.zip", b"PK\x03\x04")
    store.put("docs/drafts/wip.md", "# WIP")
    store.put("docs/folder/", b"")  # a "folder" placeholder some tools create
    store.put("docs/bad.jsonl", '{"_id": "ok", "text": "fine"}\nnot json\n{"text": "no id"}\n')
    source = store.source(include=["**/*"], exclude=["drafts/**"], max_file_bytes=1_000)
    uris = [i.uri for i in source.scan()]
    assert "drafts/wip.md" not in uris and "big.txt" not in uris and "archive.zip" not in uris
    assert "bad.jsonl#ok" in uris and "notes.txt" in uris
    failures = {f.uri: f.reason for f in source.failures}
    assert "over max_file_bytes=1,000" in failures["big.txt"]
    assert "unsupported file type '.zip'" in failures["archive.zip"]
    assert "not valid JSON" in failures["bad.jsonl:2"]
    assert "missing id field" in failures["bad.jsonl:3"]
    assert set(failures) == {"big.txt", "archive.zip", "bad.jsonl:2", "bad.jsonl:3"}


def test_a_url_naming_one_record_file(store: Store) -> None:
    _fill(store)
    url = f"{store.scheme}://{store.bucket}/docs/rows.jsonl"
    source = store.source(url=url)
    items = list(source.scan())
    assert [i.uri for i in items] == ["rows.jsonl#r1", "rows.jsonl#r2"]
    assert source.source_uri(items[0]) == f"{url}#r1"


def test_a_missing_bucket_is_a_clear_error(store: Store) -> None:
    source = store.source(url=f"{store.scheme}://no-such-bucket-{uuid.uuid4().hex[:8]}/docs")
    with pytest.raises(SourceError, match="no such bucket") as err:
        list(source.scan())
    assert store.endpoint in str(err.value)


def test_an_unreachable_endpoint_fails_after_its_retries(store: Store) -> None:
    down = f"http://127.0.0.1:{_free_port()}"
    source = store.source(endpoint_url=down, retries=2, backoff=0.05)
    t0 = time.perf_counter()
    with pytest.raises(SourceError) as err:
        list(source.scan())
    elapsed = time.perf_counter() - t0
    message = str(err.value)
    assert f"bucket {store.bucket!r} at {down}" in message and "3 attempt(s)" in message
    assert 0.15 <= elapsed < 10  # two backoffs (0.05 s, 0.1 s) and no library-level retry storm


# ------------------------------------------------------------------------------------------------------
# configs: checked without the libraries, secrets kept out of sight


def test_configs_validate_urls_and_credentials() -> None:
    with pytest.raises(ValueError, match="s3://bucket/prefix"):
        S3Config(url="gs://bucket/docs")
    with pytest.raises(ValueError, match="gs://bucket/prefix"):
        GcsConfig(url="s3://bucket")
    with pytest.raises(ValueError, match="both key and secret"):
        S3Config(url="s3://b", key="k")
    with pytest.raises(ValueError, match="http:// or https://"):
        S3Config(url="s3://b", endpoint_url="localhost:9000")
    assert S3Config(url="${DOCS_BUCKET_URL}").url == "${DOCS_BUCKET_URL}"  # resolved later, checked then
    assert GcsConfig(url="gcs://b/p").url == "gs://b/p"
    cfg = S3Config(url="s3://b/p/", key="AKIA-key-id", secret="very-secret")
    assert cfg.bucket == "b" and cfg.prefix == "p"
    for secret in ("very-secret", "AKIA-key-id"):
        assert secret not in repr(cfg) and secret not in str(cfg.model_dump()) and secret not in cfg.model_dump_json()
    gcs = GcsConfig(url="gs://b", token="ya29.raw-access-token")
    assert "ya29.raw-access-token" not in repr(gcs) and "ya29.raw-access-token" not in gcs.model_dump_json()


@pytest.mark.parametrize(("cls", "config", "module", "extra"), [
    (S3Source, S3Config(url="s3://b"), "s3fs", "s3"),
    (GcsSource, GcsConfig(url="gs://b"), "gcsfs", "gcs"),
])
def test_a_missing_library_names_the_extra(cls: Any, config: Any, module: str, extra: str,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # what an environment without the extra looks like
    monkeypatch.setitem(sys.modules, f"{module}.core", None)
    with pytest.raises(MissingDependencyError, match=rf"pip install 'flightdeck\[{extra}\]'"):
        list(cls(config).scan())


def test_items_are_source_items(store: Store) -> None:
    store.put("docs/a.md", "# A")
    (item,) = store.source().scan()
    assert isinstance(item, SourceItem) and item.metadata == {}


# ------------------------------------------------------------------------------------------------------
# record files: downloaded again only when they change (the scan cache)


@pytest.fixture
def body_gets(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every body download that any s3fs or gcsfs filesystem makes, as it leaves for the server.

    s3fs reads a body with a GetObject call, gcsfs with a GET on the object's ``?alt=media`` URL; listings
    and metadata requests are other calls, so they are not counted. Each is recorded as ``bucket/key``.
    A library that is not installed makes no downloads (the ``store`` fixture skips its tests): nothing to count.
    """
    gets: list[str] = []
    if installed("s3fs"):
        import s3fs

        call_s3 = s3fs.S3FileSystem._call_s3

        async def counting_call_s3(self: Any, method: str, *args: Any, **kwargs: Any) -> Any:
            if method == "get_object":
                gets.append(f"{kwargs['Bucket']}/{kwargs['Key']}")
            return await call_s3(self, method, *args, **kwargs)

        monkeypatch.setattr(s3fs.S3FileSystem, "_call_s3", counting_call_s3)
    if installed("gcsfs"):
        from gcsfs.core import GCSFileSystem

        call_gcs = GCSFileSystem._call

        async def counting_call_gcs(self: Any, method: str, path: str, *args: Any, **kwargs: Any) -> Any:
            # a body download: .../download/storage/v1/b/<bucket>/o/<key>?alt=media
            if method.upper() == "GET" and "alt=media" in path:
                bucket, _, key = path.split("/b/", 1)[1].partition("/o/")
                gets.append(f"{bucket}/{unquote(key.split('?', 1)[0])}")
            return await call_gcs(self, method, path, *args, **kwargs)

        monkeypatch.setattr(GCSFileSystem, "_call", counting_call_gcs)
    return gets


def _next_source(store: Store, previous: S3Source | GcsSource, **extra: Any) -> S3Source | GcsSource:
    """A new source, as the next run builds it, handed the scan cache the workspace kept (through JSON)."""
    source = store.source(**extra)
    source.scan_cache = json.loads(json.dumps(previous.scan_cache))
    return source


def _listed(source: S3Source | GcsSource) -> tuple[list[tuple[str, str, str, dict[str, Any]]], list[Any]]:
    items = [(i.uri, i.content_hash, i.media_type, i.metadata) for i in source.scan()]
    return items, [(f.uri, f.reason, f.gone) for f in source.failures]


def test_an_unchanged_record_file_is_listed_without_a_download(store: Store, body_gets: list[str]) -> None:
    _fill(store)
    store.put("docs/bad.jsonl", '{"_id": "ok", "text": "fine"}\nnot json\n')
    first = store.source()
    first_items, first_failures = _listed(first)
    assert len(body_gets) == 2  # rows.jsonl and bad.jsonl: a scan without a cache must read them
    assert any("bad.jsonl:2" == f[0] for f in first_failures)

    body_gets.clear()
    second = _next_source(store, first)
    assert _listed(second) == (first_items, first_failures)  # the same records, hashes, metadata, refusals
    assert body_gets == []
    assert second.scan_cache == first.scan_cache

    # Reading a record the cache listed (a changed pipeline re-parses everything) downloads its object
    # once, for all of its records, and gives what the first scan's split gave.
    items = {i.uri: i for i in second.scan()}
    assert second.read(items["rows.jsonl#r2"]) == first.read(items["rows.jsonl#r2"])
    assert second.read(items["rows.jsonl#r1"]) == first.read(items["rows.jsonl#r1"])
    assert len(body_gets) == 1 and body_gets[0].endswith("rows.jsonl")
    record = parse(items["rows.jsonl#r2"], second.read(items["rows.jsonl#r2"]))
    assert record.title == "Frames" and record.content_hash == items["rows.jsonl#r2"].content_hash


def test_a_changed_record_file_or_mapping_is_read_again(store: Store, body_gets: list[str]) -> None:
    _fill(store)
    first = store.source()
    before = dict((uri, chash) for uri, chash, *_ in _listed(first)[0])

    store.put("docs/rows.jsonl", DOCS["rows.jsonl"].replace("made of oak", "made of ash"))
    body_gets.clear()
    second = _next_source(store, first)
    after = dict((uri, chash) for uri, chash, *_ in _listed(second)[0])
    assert len(body_gets) == 1 and body_gets[0].endswith("rows.jsonl")
    assert after["rows.jsonl#r1"] == before["rows.jsonl#r1"]  # an unchanged row keeps its hash: not parsed
    assert after["rows.jsonl#r2"] != before["rows.jsonl#r2"]
    items = {i.uri: i for i in second.scan()}
    assert b"made of ash" in second.read(items["rows.jsonl#r2"])

    # The same bytes split another way (other field names) is not what the cache holds.
    body_gets.clear()
    third = _next_source(store, second, title_field="heading")
    fields = [metadata[RECORD_FIELDS_KEY]["title"] for uri, _, _, metadata in _listed(third)[0] if "#" in uri]
    assert fields == ["heading", "heading"]
    assert len(body_gets) == 1


def test_a_deleted_record_file_leaves_the_cache(store: Store, body_gets: list[str]) -> None:
    _fill(store)
    first = store.source()
    _listed(first)
    assert "rows.jsonl" in first.scan_cache
    store.delete("docs/rows.jsonl")
    second = _next_source(store, first)
    assert all(not uri.startswith("rows.jsonl") for uri, *_ in _listed(second)[0])
    assert second.scan_cache == {}


def test_runs_read_no_record_body_that_did_not_change(store: Store, tmp_path: Path, body_gets: list[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    _fill(store)
    _write_spec(tmp_path, {"provider": store.provider, **store.settings()})
    fake = FakeEmbedder()
    monkeypatch.setattr(Assembly, "embedder", property(lambda self: fake))  # the source is under test

    def run() -> dict[str, Any]:
        result = CliRunner().invoke(app, ["run", "--json", "--spec", str(tmp_path)])
        assert result.exit_code == 0, result.output
        lines = result.stdout.splitlines()
        summary = json.loads("\n".join(lines[lines.index("{"):]))
        return {s["step"]: s for s in summary["steps"]}

    def records() -> dict[str, str]:
        with _db(tmp_path) as db:
            return dict(db.execute("select id, content_hash from documents where id like '%#%'").fetchall())

    assert run()["ingest"]["counts"]["parsed"] == 5
    assert len(body_gets) == 4  # three documents, and rows.jsonl once (at scan time)
    first_records = records()

    body_gets.clear()
    assert [s["status"] for s in run().values()] == ["skipped"] * 3
    assert body_gets == []  # was 1 (rows.jsonl) before the scan cache

    # A pipeline change re-parses every document: each record file is downloaded once, at read time.
    (tmp_path / "flightdeck.yaml").write_text((tmp_path / "flightdeck.yaml").read_text().replace(
        "size: 64", "size: 48"), encoding="utf-8")
    body_gets.clear()
    assert run()["ingest"]["counts"]["parsed"] == 5
    assert len(body_gets) == 4 and sum(g.endswith("rows.jsonl") for g in body_gets) == 1
    assert records() == first_records

    # One row changed: the object is read again, and only that row is parsed.
    store.put("docs/rows.jsonl", DOCS["rows.jsonl"].replace("made of oak", "made of ash"))
    body_gets.clear()
    counts = run()["ingest"]["counts"]
    assert counts["parsed"] == 1 and counts["unchanged"] == 4
    assert len(body_gets) == 1 and body_gets[0].endswith("rows.jsonl")

    # The record file deleted: its records leave the dataset, and nothing is downloaded.
    store.delete("docs/rows.jsonl")
    body_gets.clear()
    counts = run()["ingest"]["counts"]
    assert counts["removed"] == 2 and counts["documents"] == 3 and body_gets == []
    assert records() == {}
    with _db(tmp_path) as db:
        assert db.execute("select count(*) from chunks where document_id like '%rows.jsonl%'").fetchone()[0] == 0
