"""A source's parser settings are part of its documents' pipeline hash: changing them re-parses that source's
documents they reach, and no other source's. Real PDFs (fpdf2, Pillow for a scan) and the real Tesseract; the
deterministic FakeEmbedder."""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path

import pytest

from flightdeck import Project
from flightdeck.data.parsers.ocr import ocr_available
from flightdeck.testing import FakeEmbedder

pytestmark = pytest.mark.integration

fpdf = pytest.importorskip("fpdf", reason="fpdf2 (the dev extra) generates the test PDFs")

SPEC = """\
project: source-settings
scoping: {{use_case: rag, objective: retrieval_system}}
data:
  sources:
    - {{provider: files, path: ./alpha, name: alpha, {alpha}}}
    - {{provider: files, path: ./beta, name: beta, {beta}}}
  chunking: {{provider: recursive, size: 64, overlap: 8}}
retrieval:
  embedding_model: sentence_transformers
  vector_database: faiss
  system: [hybrid_search]
  search: {{mode: hybrid, k: 5}}
"""


def _text_pdf(sentence: str) -> bytes:
    pdf = fpdf.FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=11)
    pdf.multi_cell(0, 6, sentence)
    return bytes(pdf.output())


def _scanned_pdf(line: str) -> bytes:
    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("L", (1000, 160), 255)
    ImageDraw.Draw(img).text((40, 40), line, fill=0, font=ImageFont.load_default(size=36))
    out = io.BytesIO()
    img.save(out, format="PDF", resolution=200)
    return out.getvalue()


def _write(root: Path, alpha: str, beta: str) -> None:
    (root / "flightdeck.yaml").write_text(SPEC.format(alpha=alpha, beta=beta), "utf-8")


def _run(root: Path) -> dict:
    project = Project.load(root)
    project.use(embedder=FakeEmbedder())
    summary = project.run()
    assert summary.status == "succeeded", summary
    return {s.step: s for s in summary.steps}


def _runs_by_document(root: Path) -> dict[str, str]:
    """The run that last wrote each document: a document re-processed by a run carries its id."""
    with sqlite3.connect(root / ".flightdeck" / "metadata.db") as db:
        return dict(db.execute("select id, run_id from documents"))


def _corpus(root: Path) -> None:
    for name in ("alpha", "beta"):
        folder = root / name
        folder.mkdir(parents=True)
        (folder / "manual.pdf").write_bytes(_text_pdf(f"The {name} manual says the valve opens clockwise."))
        (folder / "notes.md").write_text(f"# Notes\n\nThe {name} team meets on Fridays.\n", "utf-8")
        (folder / "faq.jsonl").write_text(json.dumps({"_id": "q1", "title": "Hours", "text": f"{name} opens at 9.",
                                                      "answer": f"The {name} desk answers at noon."}) + "\n", "utf-8")


def test_changing_one_sources_limits_reparses_only_its_documents_those_limits_reach(tmp_path: Path) -> None:
    _corpus(tmp_path)
    _write(tmp_path, "max_pages: 50", "max_pages: 50")
    first = _run(tmp_path)
    assert first["ingest"].counts["parsed"] == 6
    before = _runs_by_document(tmp_path)

    _write(tmp_path, "max_pages: 40", "max_pages: 50")  # alpha's PDF limit changes; beta's settings do not
    ingest = _run(tmp_path)["ingest"]
    assert ingest.status == "succeeded"
    assert (ingest.counts["parsed"], ingest.counts["unchanged"]) == (1, 5), ingest.counts
    after = _runs_by_document(tmp_path)
    reparsed = sorted(d for d in after if after[d] != before[d])
    assert reparsed == ["alpha/manual.pdf"]  # not beta's PDF, and not alpha's Markdown (no parser setting reaches it)

    # nothing changed since: every step is skipped again
    assert [s.status for s in _run(tmp_path).values()] == ["skipped"] * 3


def test_changing_the_record_text_field_reparses_the_records_of_that_source(tmp_path: Path) -> None:
    _corpus(tmp_path)
    _write(tmp_path, "max_pages: 50", "max_pages: 50")
    _run(tmp_path)
    before = _runs_by_document(tmp_path)
    _write(tmp_path, "max_pages: 50, text_field: answer", "max_pages: 50")
    ingest = _run(tmp_path)["ingest"]
    assert ingest.counts["parsed"] == 1, ingest.counts
    after = _runs_by_document(tmp_path)
    assert sorted(d for d in after if after[d] != before[d]) == ["alpha/faq.jsonl#q1"]
    with sqlite3.connect(tmp_path / ".flightdeck" / "metadata.db") as db:
        texts = dict(db.execute("select document_id, text from chunks where document_id like '%faq.jsonl%'"))
    assert texts == {"alpha/faq.jsonl#q1": "The alpha desk answers at noon.", "beta/faq.jsonl#q1": "beta opens at 9."}


@pytest.mark.exercises("data.preprocessing.ocr")
def test_turning_ocr_on_reads_the_scans_of_that_source(tmp_path: Path) -> None:
    assert ocr_available() is None, "this test needs OCR; `make test` installs tesseract-ocr"
    for name in ("alpha", "beta"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "scan.pdf").write_bytes(_scanned_pdf(f"Delivery note for {name} Quillon"))
    _write(tmp_path, "ocr: 'off'", "ocr: 'off'")
    first = _run(tmp_path)["ingest"].counts
    assert first["parsed"] == 2 and first["chunks"] == 0  # scans without OCR hold no text
    before = _runs_by_document(tmp_path)

    _write(tmp_path, "ocr: auto", "ocr: 'off'")
    ingest = _run(tmp_path)["ingest"].counts
    assert ingest["parsed"] == 1 and ingest["unchanged"] == 1, ingest
    after = _runs_by_document(tmp_path)
    assert sorted(d for d in after if after[d] != before[d]) == ["alpha/scan.pdf"]
    with sqlite3.connect(tmp_path / ".flightdeck" / "metadata.db") as db:
        chunks = db.execute("select document_id, text from chunks").fetchall()
    assert [d for d, _ in chunks] == ["alpha/scan.pdf"] and "Quillon" in chunks[0][1]
