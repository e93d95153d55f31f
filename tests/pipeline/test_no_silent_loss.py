"""Issue #9, "no silent loss": a run that ingested nothing fails, failures past data.failures fail the run,
and every degradation (pages that need OCR, fallback decodings, hook and lineage failures, broken plugins)
is a warning in the run summary and in ``--json``; names printed through Rich are escaped."""

from __future__ import annotations

import importlib
import io
import json
import sqlite3
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from flightdeck import Project
from flightdeck.cli.main import app
from flightdeck.pipeline.assembly import Assembly
from flightdeck.pipeline.progress import RichReporter
from flightdeck.pipeline.runner import RunHook, Runner, StepFailedError, StepResult
from flightdeck.registry import registry
from flightdeck.registry.lookup import ENTRY_POINT_GROUP
from flightdeck.spec.loader import check_spec
from flightdeck.testing import FakeEmbedder
from flightdeck.workspace import Workspace

pytestmark = pytest.mark.unit

GOOD = {f"good{i}.txt": f"Widget note number {i}: sprockets turn clockwise on model W-{i}00.\n" for i in range(4)}
BINARY = b"\x00\x01\x02binary\x00" * 10


def _spec(root: Path, extra: str = "", source: str = "{provider: files, path: ./docs}") -> None:
    (root / "flightdeck.yaml").write_text(textwrap.dedent(f"""\
        project: no-silent-loss
        data:
          sources: [{source}]
          chunking: {{provider: recursive, size: 64, overlap: 8}}
        """) + textwrap.indent(extra, "  ") + "retrieval: {system: [hybrid_search]}\n", "utf-8")


def _docs(root: Path, files: dict[str, str | bytes]) -> Path:
    docs = root / "docs"
    for rel, body in files.items():
        path = docs / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(body, bytes):
            path.write_bytes(body)
        else:
            path.write_text(body, "utf-8")
    docs.mkdir(exist_ok=True)
    return docs


def _project(root: Path) -> Project:
    project = Project.load(root)
    project.use(embedder=FakeEmbedder())
    return project


@pytest.fixture()
def fake_model(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeEmbedder()
    monkeypatch.setattr(Assembly, "embedder", property(lambda self: fake))  # the CLI builds its own Project


def _cli(root: Path, *args: str) -> Any:
    return CliRunner().invoke(app, ["run", *args, "--spec", str(root)])


def _json_summary(stdout: str) -> tuple[list[dict], dict]:
    lines = stdout.splitlines()
    start = lines.index("{")  # events are one object per line; the summary comes last, indented
    return [json.loads(x) for x in lines[:start]], json.loads("\n".join(lines[start:]))


def _last_run(root: Path) -> tuple[str, dict]:
    with sqlite3.connect(root / ".flightdeck" / "metadata.db") as db:
        status, summary = db.execute("select status, summary from runs order by started_at desc limit 1").fetchone()
    return status, json.loads(summary)


def _documents(root: Path) -> list[str]:
    with sqlite3.connect(root / ".flightdeck" / "metadata.db") as db:
        return sorted(r[0] for r in db.execute("select id from documents"))


# nothing ingested ------------------------------------------------------------------------------------------
def test_a_folder_of_pdfs_without_the_pdf_extra_fails_the_run(tmp_path: Path, fake_model: None,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    fpdf = pytest.importorskip("fpdf")

    def pdf(text: str) -> bytes:
        doc = fpdf.FPDF()
        doc.add_page()
        doc.set_font("Helvetica", size=11)
        doc.multi_cell(0, 6, text)
        return bytes(doc.output())

    _docs(tmp_path, {"manual.pdf": pdf("Sprockets are aligned with the W42 tool."), "guide.pdf": pdf("Frames.")})
    _spec(tmp_path)
    monkeypatch.setitem(sys.modules, "pdfplumber", None)  # what `import` sees without the pdf extra

    result = _cli(tmp_path)
    assert result.exit_code == 1, result.output
    assert "nothing was ingested: all 2 item(s) the sources listed failed" in result.stderr
    assert "docs/guide.pdf: reading PDF files needs: pip install 'flightdeck[pdf]'" in result.stderr
    assert "2 item(s) could not be ingested" in result.stderr  # the count and the reasons, always

    result = _cli(tmp_path, "--json")
    assert result.exit_code == 1, result.output
    _, summary = _json_summary(result.stdout)
    assert summary["status"] == "failed" and "nothing was ingested" in summary["error"]
    [ingest] = summary["steps"]  # embed and index did not run
    assert ingest["status"] == "failed" and ingest["counts"]["failed"] == 2
    status, stored = _last_run(tmp_path)
    assert status == "failed" and "flightdeck[pdf]" in stored["error"]  # the runs table says why

    monkeypatch.delitem(sys.modules, "pdfplumber")  # the extra installed: the next run finishes the job
    result = _cli(tmp_path, "--json")
    assert result.exit_code == 0, result.output
    assert _documents(tmp_path) == ["docs/guide.pdf", "docs/manual.pdf"]


def test_empty_sources_fail_the_run_and_say_where_to_look(tmp_path: Path) -> None:
    _docs(tmp_path, {})
    _spec(tmp_path)
    with pytest.raises(StepFailedError, match="the sources listed no documents; check `path` and `include`") as err:
        _project(tmp_path).run()
    assert err.value.summary is not None and err.value.summary.status == "failed"


def test_a_run_that_ingests_nothing_new_is_fine_when_the_dataset_holds_documents(tmp_path: Path) -> None:
    _docs(tmp_path, GOOD)
    _spec(tmp_path)
    assert _project(tmp_path).run().status == "succeeded"
    (tmp_path / "docs" / "broken.txt").write_bytes(BINARY)
    summary = _project(tmp_path).run()  # re-runs ingest: reads only the new file, which fails
    ingest = summary.steps[0]
    assert summary.status == "succeeded" and (ingest.counts["parsed"], ingest.counts["failed"]) == (0, 1)


# data.failures ---------------------------------------------------------------------------------------------
def test_failures_over_max_count_fail_the_run_and_keep_what_was_ingested(tmp_path: Path, fake_model: None) -> None:
    _docs(tmp_path, {**GOOD, "bad1.txt": BINARY, "bad2.txt": BINARY})
    _spec(tmp_path, "failures: {max_count: 1}\n")
    result = _cli(tmp_path)
    assert result.exit_code == 1, result.output
    message = result.stderr
    assert "2 of 6 item(s) could not be ingested, over data.failures.max_count=1" in message
    assert "First reasons: docs/bad1.txt: bad1.txt: binary content, not text" in message
    assert "The 4 document(s) ingested are kept; embed and index did not run" in message
    assert _documents(tmp_path) == [f"docs/{n}" for n in sorted(GOOD)]  # committed, not lost
    status, stored = _last_run(tmp_path)
    assert status == "failed" and "max_count=1" in stored["error"]
    assert [s["step"] for s in stored["steps"]] == ["ingest"] and stored["steps"][0]["counts"]["failed"] == 2

    # the same again: still failing (a failed ingest is never skipped), nothing good is read twice
    with pytest.raises(StepFailedError) as err:
        _project(tmp_path).run()
    assert err.value.counts["parsed"] == 0 and err.value.counts["unchanged"] == 4

    # a limit the failures stay within: the run passes, and embed and index run
    _spec(tmp_path, "failures: {max_count: 2}\n")
    summary = _project(tmp_path).run()
    assert summary.status == "succeeded" and [s.status for s in summary.steps] == ["succeeded"] * 3


def test_failures_over_max_share_fail_the_run(tmp_path: Path) -> None:
    _docs(tmp_path, {**GOOD, "bad1.txt": BINARY})
    _spec(tmp_path, "failures: {max_share: 0.25}\n")
    assert _project(tmp_path).run().status == "succeeded"  # 1 of 5 = 20 %
    (tmp_path / "docs" / "bad2.txt").write_bytes(BINARY)
    with pytest.raises(StepFailedError, match=r"2 of 6 item\(s\) could not be ingested \(33\.3%\), over "
                                              r"data\.failures\.max_share=0\.25"):
        _project(tmp_path).run()


def test_the_failure_limits_are_validated(tmp_path: Path) -> None:
    _docs(tmp_path, GOOD)
    _spec(tmp_path, "failures: {max_share: 1.5, max_count: -1, max_failures: 3}\n")
    _, problems = check_spec(tmp_path / "flightdeck.yaml")
    where = {p.location for p in problems}
    assert {"data.failures.max_share", "data.failures.max_count", "data.failures.max_failures"} <= where, \
        [str(p) for p in problems]
    result = CliRunner().invoke(app, ["validate", "--spec", str(tmp_path)])
    assert result.exit_code == 1 and "data.failures.max_share" in result.output


# warnings ----------------------------------------------------------------------------------------------------
def test_scanned_pages_without_tesseract_are_a_warning_of_the_run(tmp_path: Path, fake_model: None,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("pdfplumber")
    from PIL import Image, ImageDraw

    pages = []
    for n in range(3):
        img = Image.new("L", (400, 120), 255)
        ImageDraw.Draw(img).text((20, 40), f"Scanned page {n}", fill=0)
        pages.append(img)
    scan = io.BytesIO()
    pages[0].save(scan, format="PDF", resolution=100, save_all=True, append_images=pages[1:])
    _docs(tmp_path, {"scan.pdf": scan.getvalue(), **GOOD})
    _spec(tmp_path)
    import flightdeck.data.parsers.ocr as ocr

    monkeypatch.setattr(ocr.shutil, "which", lambda cmd, *a, **k: None)  # no tesseract binary on PATH

    result = _cli(tmp_path, "--json")
    assert result.exit_code == 0, result.output
    events, summary = _json_summary(result.stdout)
    ingest = summary["steps"][0]
    [warning] = ingest["counts"]["warnings"]
    assert warning["uri"] == "docs/scan.pdf"
    assert warning["message"].startswith("3 page(s) of scan.pdf need OCR and were left out (pages 1, 2, 3): ")
    assert "apt-get install tesseract-ocr" in warning["message"]
    streamed = [(e["uri"], e["message"]) for e in events if e["event"] == "item_warning"]
    assert streamed == [("docs/scan.pdf", warning["message"])]  # also a JSON line as it happens

    (tmp_path / "docs" / "scan.pdf").write_bytes(scan.getvalue() + b"\n")  # changed: read again, in text mode
    result = _cli(tmp_path)
    assert result.exit_code == 0, result.output
    assert "1 warning(s) about items that were ingested in part:" in result.stderr
    assert "docs/scan.pdf: 3 page(s) of scan.pdf need OCR" in result.stderr


def test_fallback_decodings_are_warnings_from_parsers_and_from_the_source(tmp_path: Path) -> None:
    _docs(tmp_path, {"legacy.txt": "Caf\xe9 cr\xe8me: the widget's manual.".encode("cp1252"),
                     "rows.csv": "_id,title,text\n1,Caf\xe9,Cr\xe8me br\xfbl\xe9e for widgets\n".encode("cp1252"),
                     **GOOD})
    _spec(tmp_path)
    ingest = _project(tmp_path).run().steps[0]
    warnings = {w["uri"]: w["message"] for w in ingest.counts["warnings"]}
    assert warnings == {"docs/legacy.txt": "not UTF-8: read as Windows-1252; if characters look wrong, save the "
                                           "file as UTF-8",
                        "docs/rows.csv": "not UTF-8: read as Windows-1252; if characters look wrong, save the "
                                         "file as UTF-8"}


class _Step:
    name = "only"

    def plan(self) -> tuple[str, str]:
        return "in", "cfg"

    def run(self, run_id: str, reporter: Any) -> StepResult:
        return StepResult("out", {"done": 1})


class _BrokenHook(RunHook):
    def step_finished(self, step: Any, run_id: str, record: Any, reporter: Any) -> None:
        raise ConnectionError("catalog at 127.0.0.1:9 refused")


class _DisabledHook(RunHook):
    def run_warnings(self) -> list[str]:
        return ["lineage export stopped"]


def test_hook_failures_are_run_warnings_and_the_rich_reporter_shows_them(tmp_path: Path, capsys) -> None:
    ws = Workspace(tmp_path / ".flightdeck")
    reporter = RichReporter()
    try:
        summary = Runner(ws, reporter, hooks=[_BrokenHook(), _DisabledHook()]).run([_Step()], "spec")
    finally:
        reporter.close()
    assert summary.status == "succeeded"
    assert summary.warnings == [
        {"source": "hook", "message": "_BrokenHook.step_finished failed: ConnectionError: catalog at 127.0.0.1:9 "
                                      "refused"},
        {"source": "hook", "message": "_DisabledHook: lineage export stopped"}]
    assert summary.to_dict()["warnings"] == summary.warnings
    err = capsys.readouterr().err
    assert "_BrokenHook.step_finished failed" in err and "lineage export stopped" in err


def test_a_disabled_lineage_emitter_is_a_warning_of_the_run(tmp_path: Path, fake_model: None) -> None:
    pytest.importorskip("openlineage.client")
    _docs(tmp_path, GOOD)
    (tmp_path / "blocker").write_text("a file where the lineage folder should be")
    _spec(tmp_path, "versioning: [{provider: openlineage, transport: file, path: ./blocker/lineage.jsonl}]\n")
    result = _cli(tmp_path)
    assert result.exit_code == 0, result.output
    assert "1 warning(s) about the run:" in result.stderr and "disabled for the rest of the run" in result.stderr
    (tmp_path / "docs" / "more.txt").write_text("Another widget note about frames.\n")
    result = _cli(tmp_path, "--json")
    _, summary = _json_summary(result.stdout)
    assert summary["status"] == "succeeded"
    [warning] = summary["warnings"]
    assert warning["source"] == "hook" and "lineage export to" in warning["message"]
    assert "blocker" in warning["message"] and "disabled for the rest of the run" in warning["message"]
    assert _last_run(tmp_path)[1]["warnings"] == summary["warnings"]


def test_the_text_summary_shows_the_count_and_the_first_reasons(tmp_path: Path, fake_model: None) -> None:
    _docs(tmp_path, {**GOOD, **{f"bad{i:02d}.txt": BINARY for i in range(12)}})
    _spec(tmp_path)
    result = _cli(tmp_path)
    assert result.exit_code == 0, result.output
    summary = result.stderr[result.stderr.index("12 item(s) could not be ingested:"):].splitlines()
    assert summary[1:12] == [*(f"  docs/bad{i:02d}.txt: bad{i:02d}.txt: binary content, not text" for i in range(10)),
                             "  … and 2 more (--json lists them all)"]


def test_a_broken_plugin_is_a_warning_of_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plugins = tmp_path / "plugins"
    info = plugins / "myplug_fd9-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: myplug_fd9\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\nbroken = myplug_fd9_mod:NOPE\n")
    (plugins / "myplug_fd9_mod.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(plugins))
    importlib.invalidate_caches()
    registry.cache_clear()
    try:
        _docs(tmp_path, GOOD)
        _spec(tmp_path)
        summary = _project(tmp_path).run()
    finally:
        sys.modules.pop("myplug_fd9_mod", None)
        registry.cache_clear()
    [warning] = summary.warnings
    assert warning["source"] == "plugin" and "plugin 'broken' (myplug_fd9_mod:NOPE)" in warning["message"]


# escaping ----------------------------------------------------------------------------------------------------
def test_names_that_look_like_rich_markup_are_printed_as_they_are(tmp_path: Path, fake_model: None) -> None:
    _docs(tmp_path, {**GOOD, "bad[/x].pdf": b"not a pdf at all", "[bold]odd[/bold].txt": BINARY})
    _spec(tmp_path)
    result = _cli(tmp_path)  # text mode: the Rich reporter prints each failure as it happens
    assert result.exit_code == 0, result.output
    assert "docs/bad[/x].pdf: " in result.stderr and "docs/[bold]odd[/bold].txt: " in result.stderr
