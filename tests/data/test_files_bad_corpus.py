"""A hostile corpus: everything that can be ingested is, and every failure is reported with its path.

The corpus: a corrupt PDF, an encrypted PDF, zero-byte files, a binary file named ``.txt``, a 2 GB
(sparse) file, a zip bomb ``.docx``, HTML full of scripts, Latin-1 and UTF-16 text, and two good files.
Zero-byte files: an empty ``.txt`` is an empty document (listed, no chunks, not a failure); an empty
``.pdf`` cannot be a PDF and is a failure (``empty file``).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flightdeck import Project
from flightdeck.cli.main import app
from flightdeck.data.sources.files import FilesConfig, FilesSource
from flightdeck.pipeline.assembly import Assembly
from flightdeck.testing import FakeEmbedder

pytestmark = pytest.mark.integration

fpdf = pytest.importorskip("fpdf", reason="fpdf2 (the dev extra) generates the test PDFs")

TWO_GB = 2 * 1024**3
SCRIPT_HTML = """<html><head><title>Release notes</title>
<script>document.write('<p>injected by script</p>'); var stealCookies = true;</script>
<script src="tracker.js"></script><style>p { color: red }</style></head>
<body><script>alert("popup")</script><noscript>Enable JavaScript to see the trackers</noscript>
<div role="main"><h1>Release notes</h1><p>Version 2.4 adds sprocket calibration.</p>
<script type="application/ld+json">{"secret": "structured data"}</script>
<p>Version 2.5 fixes the frame alignment bug.</p></div>
<script>for (;;) { mine_coins(); }</script></body></html>
"""
EXPECTED_FAILURES = {  # path -> a piece of the reason
    "bomb.docx": "zip bomb suspected",
    "corrupt.pdf": "corrupt or not a PDF",
    "encrypted.pdf": "encrypted PDF: needs a password",
    "empty.pdf": "empty file (0 bytes)",
    "binary.txt": "binary content, not text",
    "huge.txt": "file is 2,147,483,648 bytes, over max_file_bytes=50,000,000",
}


def _pdf(text: str, **encryption: str) -> bytes:
    pdf = fpdf.FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 18)
    pdf.cell(0, 12, "Good Guide", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=11)
    pdf.multi_cell(0, 6, text)
    if encryption:
        pdf.set_encryption(**encryption)
    return bytes(pdf.output())


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bad") / "corpus"
    root.mkdir()
    good = _pdf("The good PDF explains the calibration of the sprocket wheel.")
    (root / "corrupt.pdf").write_bytes(good[: len(good) // 3] + b"\x00garbage\xff" * 50)
    (root / "encrypted.pdf").write_bytes(_pdf("classified content", owner_password="o", user_password="u"))
    (root / "empty.txt").write_bytes(b"")
    (root / "empty.pdf").write_bytes(b"")
    (root / "binary.txt").write_bytes(bytes(range(256)) * 64)
    with open(root / "huge.txt", "wb") as f:  # sparse: takes no disk, never read
        os.truncate(f.fileno(), TWO_GB)
    with zipfile.ZipFile(root / "bomb.docx", "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        with zf.open("word/document.xml", "w", force_zip64=True) as f:
            zeros = b"\0" * (1 << 20)
            for _ in range(300):  # 300 MB of zeros, streamed: about 1.3 MB on disk
                f.write(zeros)
    (root / "scripts.html").write_text(SCRIPT_HTML, "utf-8")
    (root / "latin1.txt").write_bytes("Le café de la gare sert une crème brûlée à 4 €uros.".encode("latin-1",
                                                                                                     "replace"))
    (root / "utf16.txt").write_text("Die Größe des Zahnrads beträgt zwölf Millimeter.", "utf-16")
    (root / "good.md").write_text("# Good notes\n\nWidgets are shipped in blue boxes.\n", "utf-8")
    (root / "good.pdf").write_bytes(good)
    return root


def _project(root: Path, corpus: Path) -> Project:
    (root / "flightdeck.yaml").write_text(f"""\
project: bad-corpus
scoping: {{use_case: rag, objective: retrieval_system}}
data:
  sources:
    - {{provider: files, path: {json.dumps(str(corpus))}}}
  chunking: {{provider: recursive, size: 64, overlap: 8}}
retrieval:
  embedding_model: sentence_transformers
  vector_database: faiss
  system: [hybrid_search]
""", "utf-8")
    project = Project.load(root)
    project.use(embedder=FakeEmbedder())
    return project


def test_the_corpus_is_small_on_disk(corpus: Path) -> None:
    assert (corpus / "huge.txt").stat().st_size == TWO_GB
    assert sum(p.stat().st_blocks * 512 for p in corpus.iterdir()) < 20_000_000


def test_scan_skips_the_2gb_file_by_its_size_and_never_reads_it(corpus: Path) -> None:
    t0 = time.perf_counter()
    src = FilesSource(FilesConfig(path=str(corpus)))
    uris = [i.uri for i in src.scan()]
    assert time.perf_counter() - t0 < 5
    assert "huge.txt" not in uris and "empty.txt" in uris
    assert {f.uri: f.reason for f in src.failures}.keys() == {"huge.txt", "empty.pdf"}


@pytest.mark.exercises("data.sources.pdf_doc_ingestion")
def test_project_run_ingests_every_good_file_and_reports_each_failure(tmp_path: Path, corpus: Path) -> None:
    summary = _project(tmp_path, corpus).run()
    assert summary.status == "succeeded"
    ingest = next(s for s in summary.steps if s.step == "ingest")
    failures = {f["uri"]: f["reason"] for f in ingest.counts["failures"]}
    assert sorted(failures) == sorted(f"corpus/{p}" for p in EXPECTED_FAILURES)
    for path, reason in EXPECTED_FAILURES.items():
        assert reason in failures[f"corpus/{path}"], (path, failures[f"corpus/{path}"])
    assert ingest.counts["failed"] == 6 and ingest.counts["parsed"] == 6  # the 6 readable files

    with sqlite3.connect(tmp_path / ".flightdeck" / "metadata.db") as db:
        docs = dict(db.execute("select id, chunk_count from documents"))
        text = {d: " ".join(t for (t,) in db.execute("select text from chunks where document_id = ?", (d,)))
                for d in docs}
    assert sorted(docs) == ["corpus/empty.txt", "corpus/good.md", "corpus/good.pdf", "corpus/latin1.txt",
                            "corpus/scripts.html", "corpus/utf16.txt"]
    assert docs["corpus/empty.txt"] == 0  # an empty document: no chunks, not a failure
    assert "café" in text["corpus/latin1.txt"] and "crème brûlée" in text["corpus/latin1.txt"]
    assert "Größe des Zahnrads beträgt zwölf" in text["corpus/utf16.txt"]
    html = text["corpus/scripts.html"]
    assert "sprocket calibration" in html and "frame alignment" in html
    for leaked in ("stealCookies", "alert", "mine_coins", "injected by script", "structured data", "color: red",
                   "Enable JavaScript"):
        assert leaked not in html
    assert "calibration of the sprocket wheel" in text["corpus/good.pdf"]


def test_cli_run_json_reports_failures_with_path_and_reason(tmp_path: Path, corpus: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    _project(tmp_path, corpus)
    fake = FakeEmbedder()
    monkeypatch.setattr(Assembly, "embedder", property(lambda self: fake))  # no model download in tests
    result = CliRunner().invoke(app, ["run", "--json", "--spec", str(tmp_path)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    start = lines.index("{")  # progress events are one JSON object per line; the summary comes last, indented
    events = [json.loads(line) for line in lines[:start]]
    summary = json.loads("\n".join(lines[start:]))
    assert summary["event"] == "summary" and summary["status"] == "succeeded"
    ingest = next(s for s in summary["steps"] if s["step"] == "ingest")
    reported = {f["uri"]: f["reason"] for f in ingest["counts"]["failures"]}
    assert set(reported) == {f"corpus/{p}" for p in EXPECTED_FAILURES}
    assert all(set(f) == {"uri", "reason"} for f in ingest["counts"]["failures"])
    streamed = {e["uri"] for e in events if e.get("event") == "item_failed"}
    assert streamed == set(reported)  # each failure is also a JSON line as it happens
