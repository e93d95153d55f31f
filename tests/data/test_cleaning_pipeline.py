"""Cleaning beyond normalisation: PII redaction, language, duplicates and boilerplate, alone and in a run.

Uses the real py3langid and datasketch libraries; the pipeline runs with the deterministic FakeEmbedder.
"""

from __future__ import annotations

import json
import sqlite3
import textwrap
from pathlib import Path

import pytest

import flightdeck.spec.cleaning as cleaning_mod  # missing_cleaning_modules looks libraries up there
from flightdeck import Project
from flightdeck.data.cleaning import CleaningSettings, boilerplate_keys, strip_boilerplate
from flightdeck.data.dedupe import Signature, find_duplicates, minhash_bytes, shingles, text_hash
from flightdeck.data.documents import Document, Section
from flightdeck.data.language import detect_language
from flightdeck.data.pii import iban_valid, luhn_valid, redact_pii
from flightdeck.errors import MissingDependencyError
from flightdeck.spec.loader import check_spec
from flightdeck.testing import FakeEmbedder

pytestmark = pytest.mark.integration

SPEC = """\
project: cleaning-test
data:
  sources: [{{provider: files, path: ./docs}}]
  chunking: {{provider: recursive, size: 64, overlap: 8}}
  cleaning: {cleaning}
retrieval: {{search: {{k: 5}}}}
"""


def _write(root: Path, docs: dict[str, str]) -> None:
    for rel, body in docs.items():
        path = root / "docs" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(body), encoding="utf-8")


def _run(root: Path, cleaning: str = "{}") -> tuple[Project, dict, FakeEmbedder]:
    (root / "flightdeck.yaml").write_text(SPEC.format(cleaning=cleaning))
    project = Project.load(root)
    fake = FakeEmbedder()
    project.use(embedder=fake)
    steps = {s.step: s for s in project.run().steps}
    assert steps["ingest"].status in ("succeeded", "skipped"), steps["ingest"]
    return project, steps, fake


def _db(root: Path) -> sqlite3.Connection:
    return sqlite3.connect(root / ".flightdeck" / "metadata.db")


# PII ------------------------------------------------------------------------------------------------------
SECRETS = {
    "email": ["jane.roe@example.org", "bob.smith+news@mail.example.co.uk"],
    "phone": ["+1 (415) 555-0132", "+44 20 7946 0958", "(212) 555-0187", "030 12345678"],
    "card": ["4111 1111 1111 1111", "5500-0055-5555-5559", "378282246310005"],
    "iban": ["DE89 3704 0044 0532 0130 00", "GB82WEST12345698765432", "FR1420041010050500013M02606"],
    "account": ["12345678901"],
}


def test_luhn_and_iban_checks() -> None:
    assert luhn_valid("4111 1111 1111 1111") and luhn_valid("378282246310005")
    assert not luhn_valid("4111 1111 1111 1112") and not luhn_valid("1234")
    assert iban_valid("DE89 3704 0044 0532 0130 00") and iban_valid("gb82west12345698765432")
    assert not iban_valid("DE89 3704 0044 0532 0130 01")  # mod-97 fails
    assert not iban_valid("DE89 3704 0044 0532 0130")  # wrong length for DE


def test_redaction_replaces_each_kind_and_leaves_lookalikes() -> None:
    text = ("Write to jane.roe@example.org or bob.smith+news@mail.example.co.uk. Call +1 (415) 555-0132, "
            "(212) 555-0187, +44 20 7946 0958 or 030 12345678. Pay with 4111 1111 1111 1111 or 5500-0055-5555-5559 "
            "or 378282246310005; wire to DE89 3704 0044 0532 0130 00, GB82WEST12345698765432. "
            "Account number: 12345678901. Konto: 9876543210.")
    out = redact_pii(text)
    for values in SECRETS.values():
        for v in values:
            assert v not in out
    assert out.count("[EMAIL]") == 2 and out.count("[PHONE]") == 4 and out.count("[CARD]") == 3
    assert out.count("[IBAN]") == 2 and out.count("[ACCOUNT]") == 2
    keep = ("Order 4111 1111 1111 1112 failed Luhn; IBAN DE89 3704 0044 0532 0130 01 failed mod-97; "
            "released 2024-01-15, version 3.11.2, ip 192.168.1.100, 1,234,567.89 items, ids 12345 67890, "
            "ISBN 978-3-16-148410-0, call me at noon, price 100 200 3000.")
    assert redact_pii(keep) == keep
    assert redact_pii(text, ["email"]).count("[") == 2  # only the chosen kinds


def _grep_workspace(root: Path, needles: list[str]) -> list[tuple[str, str]]:
    found = []
    for path in (root / ".flightdeck").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found += [(str(path), n) for n in needles if n.encode() in data]
    return found


@pytest.mark.exercises("data.preprocessing.cleaning_normalization")
def test_nothing_unredacted_reaches_chunks_keyword_index_or_artifacts(tmp_path: Path) -> None:
    _write(tmp_path, {
        "people.md": f"""\
            # Contacts

            Jane can be reached at {SECRETS['email'][0]} or on {SECRETS['phone'][0]}; the London office is on
            {SECRETS['phone'][1]} and New York on {SECRETS['phone'][2]}. Berlin: {SECRETS['phone'][3]}.

            ## Payments to {SECRETS['email'][1]}

            Cards on file: {SECRETS['card'][0]}, {SECRETS['card'][1]} and {SECRETS['card'][2]}. The test number
            4111 1111 1111 1112 fails the Luhn check and is not a card.

            Wire transfers go to {SECRETS['iban'][0]} or {SECRETS['iban'][1]} ({SECRETS['iban'][2]} in Paris).
            Account number: {SECRETS['account'][0]}.
            """,
        "other.txt": "Widgets are blue and green, and the installer runs on every platform we support.\n",
    })
    (tmp_path / "docs" / "rows.jsonl").write_text(json.dumps(
        {"_id": "r1", "title": f"Ticket from {SECRETS['email'][0]}", "owner": SECRETS["email"][1],
         "text": f"Customer called from {SECRETS['phone'][2]} about card {SECRETS['card'][0]}."}) + "\n")
    _, steps, fake = _run(tmp_path, "{pii: redact}")
    assert steps["ingest"].counts["parsed"] == 3
    needles = [v for values in SECRETS.values() for v in values] + ["555-0132", "7946 0958", "0532 0130",
                                                                   "1111 1111 1111 1111", "jane.roe", "bob.smith"]
    with _db(tmp_path) as db:
        texts = " ".join(r[0] for r in db.execute("select indexed_text from chunks"))
        keyword_hits = db.execute("select count(*) from chunks_fts where chunks_fts match 'email'").fetchone()[0]
        docs = " ".join(r[0] + r[1] for r in db.execute("select title, metadata from documents"))
    for placeholder in ("[EMAIL]", "[PHONE]", "[CARD]", "[IBAN]", "[ACCOUNT]"):
        assert placeholder in texts
    assert "4111 1111 1111 1112" in texts  # not a card: kept
    assert keyword_hits > 0 and "[EMAIL]" in docs
    assert [n for n in needles if n in texts + docs + " ".join(fake.embedded_texts)] == []
    # the raw bytes of the metadata DB (with its WAL), the artifacts and the index folders
    assert _grep_workspace(tmp_path, needles) == []


# language ---------------------------------------------------------------------------------------------------
LANG_DOCS = {
    "en.txt": "The committee met on Tuesday to discuss the new library opening hours and agreed to extend them "
              "during the examination period so that students have more time to study.",
    "de.txt": "Der Ausschuss traf sich am Dienstag, um die neuen Öffnungszeiten der Bibliothek zu besprechen, und "
              "beschloss, sie während der Prüfungszeit zu verlängern, damit die Studierenden mehr Zeit haben.",
    "fr.txt": "Le comité s'est réuni mardi pour discuter des nouveaux horaires de la bibliothèque et a décidé de "
              "les prolonger pendant la période des examens afin que les étudiants aient plus de temps.",
    "short.txt": "OK 42",
}


def test_language_detection_is_deterministic() -> None:
    assert [detect_language(LANG_DOCS[f"{c}.txt"]) for c in ("en", "de", "fr")] == ["en", "de", "fr"]
    assert detect_language(LANG_DOCS["short.txt"]) == "unknown" and detect_language("") == "unknown"
    assert {detect_language(LANG_DOCS["de.txt"]) for _ in range(5)} == {"de"}


def test_language_is_stored_on_documents_chunks_and_signatures(tmp_path: Path) -> None:
    _write(tmp_path, LANG_DOCS)
    _run(tmp_path)
    with _db(tmp_path) as db:
        docs = {r[0]: json.loads(r[1])["language"] for r in db.execute("select id, metadata from documents")}
        chunk_langs = {json.loads(r[0])["language"] for r in db.execute("select metadata from chunks")}
        sigs = dict(db.execute("select document_id, language from document_signatures"))
    assert docs == {"docs/en.txt": "en", "docs/de.txt": "de", "docs/fr.txt": "fr", "docs/short.txt": "unknown"}
    assert chunk_langs == {"en", "de", "fr", "unknown"} and sigs == docs


# duplicates ---------------------------------------------------------------------------------------------
BASE = ("Sprockets must be aligned before the widget installer runs, otherwise it stops with error W42 and "
        "asks the operator to check the frame. Align the two sprockets with the marks on the frame, tighten "
        "the bolts by hand, then run the installer again. If the error persists, the license key may be "
        "missing from the box; contact support with the serial number printed under the frame. Keep the "
        "original packaging until the widget has run for a week without errors.")


def _variant(word: str, replacement: str) -> str:
    assert word in BASE
    return BASE.replace(word, replacement, 1)


def test_shingles_and_duplicate_finding() -> None:
    assert shingles("One two three four five six") == {"one two three four five", "two three four five six"}
    assert shingles("Short text") == {"short text"}
    near = _variant("tighten", "fasten")
    sigs = [Signature(d, text_hash(t), minhash_bytes(t)) for d, t in
            [("b", BASE), ("a", near), ("c", BASE), ("d", "Completely different words about gardening and roses "
                                                         "that share nothing with the installer text at all.")]]
    dups = find_duplicates(sigs, "near", threshold=0.8)
    assert [(d.uri, d.duplicate_of, d.kind) for d in dups] == [("b", "a", "near"), ("c", "a", "near")]
    assert 0.8 <= dups[0].similarity < 1.0
    exact = find_duplicates(sigs, "exact")
    assert [(d.uri, d.duplicate_of, d.kind, d.similarity) for d in exact] == [("c", "b", "exact", 1.0)]
    assert find_duplicates(sigs, "off") == []
    assert find_duplicates(sigs, "near", threshold=0.99) == [exact[0]]


def test_exact_and_near_duplicates_are_dropped_with_a_report_across_runs(tmp_path: Path) -> None:
    _write(tmp_path, {"a.txt": BASE, "b.txt": BASE + "\n\n\n", "c.txt": _variant("tighten", "fasten"),
                      "d.txt": "Gardening notes: roses need sun, water in the morning and a little compost."})
    settings = "{dedupe: near, near_threshold: 0.8}"
    _, steps, _ = _run(tmp_path, settings)
    ingest = steps["ingest"].counts
    assert [(d["uri"], d["duplicate_of"], d["kind"]) for d in ingest["duplicates"]] == [
        ("docs/b.txt", "docs/a.txt", "exact"), ("docs/c.txt", "docs/a.txt", "near")]
    assert ingest["duplicates"][0]["similarity"] == 1.0 and 0.8 <= ingest["duplicates"][1]["similarity"] < 1
    assert ingest["duplicates_dropped"] == 2 and ingest["parsed"] == 4
    with _db(tmp_path) as db:
        assert {r[0] for r in db.execute("select id from documents")} == {"docs/a.txt", "docs/d.txt"}
        assert {r[0] for r in db.execute("select distinct document_id from chunks")} == {"docs/a.txt", "docs/d.txt"}
        assert {r[0] for r in db.execute("select document_id from document_signatures")} == {"docs/a.txt",
                                                                                             "docs/d.txt"}
    # nothing changed: nothing runs
    _, steps, _ = _run(tmp_path, settings)
    assert steps["ingest"].status == "skipped"
    # a near duplicate added later is dropped against the stored signature; the known duplicates are not re-read
    _write(tmp_path, {"e.txt": _variant("week", "month")})
    _, steps, _ = _run(tmp_path, settings)
    ingest = steps["ingest"].counts
    assert ingest["parsed"] == 1 and ingest["unchanged"] == 4
    assert [(d["uri"], d["duplicate_of"]) for d in ingest["duplicates"]] == [
        ("docs/b.txt", "docs/a.txt"), ("docs/c.txt", "docs/a.txt"), ("docs/e.txt", "docs/a.txt")]
    # a copy with a smaller id wins over the stored original, as it would in a run from scratch
    _write(tmp_path, {"0.txt": BASE})
    _, steps, _ = _run(tmp_path, settings)
    with _db(tmp_path) as db:
        assert {r[0] for r in db.execute("select id from documents")} == {"docs/0.txt", "docs/d.txt"}
    assert ("docs/a.txt", "docs/0.txt", "exact") in {(d["uri"], d["duplicate_of"], d["kind"])
                                                      for d in steps["ingest"].counts["duplicates"]}
    # the duplicates of the displaced original are checked again on the next run
    _write(tmp_path, {"d.txt": "Gardening notes: tulips need sun too."})
    _, steps, _ = _run(tmp_path, settings)
    ingest = steps["ingest"].counts
    assert ingest["parsed"] == 4  # d, and b, c, e whose original left
    assert {d["uri"]: d["duplicate_of"] for d in ingest["duplicates"]} == {
        "docs/a.txt": "docs/0.txt", "docs/b.txt": "docs/0.txt", "docs/c.txt": "docs/0.txt", "docs/e.txt": "docs/0.txt"}
    # dedupe off keeps every copy (and re-processes every document: the settings are in the pipeline hash)
    _, steps, _ = _run(tmp_path, "{dedupe: off}")
    assert steps["ingest"].counts["parsed"] == 6 and "duplicates" not in steps["ingest"].counts
    with _db(tmp_path) as db:
        assert db.execute("select count(*) from documents").fetchone()[0] == 6
        assert db.execute("select count(*) from document_signatures").fetchone()[0] == 6


def test_removing_a_document_removes_its_signature(tmp_path: Path) -> None:
    _write(tmp_path, {"a.txt": BASE, "d.txt": "Gardening notes: roses need sun and water."})
    _run(tmp_path)
    (tmp_path / "docs" / "a.txt").unlink()
    _run(tmp_path)
    with _db(tmp_path) as db:
        assert [r[0] for r in db.execute("select document_id from document_signatures")] == ["docs/d.txt"]


# boilerplate ----------------------------------------------------------------------------------------------
NAV = "Home | Products | Support | Contact us"
FOOTER = "Copyright 2024 Widget Corp. All rights reserved."


def _page(i: int) -> str:
    return (f"{NAV}\n\n# Widget model {i}\n\nModel {i} has {i + 2} sprockets and weighs {10 + i} kilograms; it "
            f"ships in box size {i % 3}.\n\n```\npip install widget\nwidget setup --model {i}\n```\n\n{FOOTER}\n")


def test_boilerplate_lines_need_half_of_at_least_five_documents() -> None:
    docs = [Document(f"d{i}", "h", "t", (Section((), _page(i)),)) for i in range(6)]
    keys = boilerplate_keys(docs, len(docs))
    assert len(keys) == 2  # nav and footer; the shared code line inside the fence does not count
    stripped = strip_boilerplate(docs[0], keys).text
    assert NAV not in stripped and FOOTER not in stripped and "pip install widget" in stripped
    assert boilerplate_keys(docs[:4], 4) == set()  # too few documents
    assert boilerplate_keys(docs[:2], 6) == set()  # 2 of 6 is not half: a subset never over-counts


def test_boilerplate_is_removed_in_the_pipeline_and_remembered(tmp_path: Path) -> None:
    _write(tmp_path, {f"model{i}.md": _page(i) for i in range(6)})
    _run(tmp_path)
    with _db(tmp_path) as db:
        texts = [r[0] for r in db.execute("select indexed_text from chunks")]
    assert texts and not any(NAV in t or "All rights reserved" in t for t in texts)
    assert sum("pip install widget" in t for t in texts) == 6
    # an edited page, re-read alone, still loses the lines learnt from the whole source
    _write(tmp_path, {"model3.md": _page(3).replace("sprockets", "gears")})
    _, steps, _ = _run(tmp_path)
    assert steps["ingest"].counts["parsed"] == 1
    with _db(tmp_path) as db:
        text = " ".join(r[0] for r in db.execute("select indexed_text from chunks where document_id like '%model3%'"))
    assert "gears" in text and NAV not in text and FOOTER not in text
    # switched off: every document is processed again and keeps its lines
    _, steps, _ = _run(tmp_path, "{strip_boilerplate: false}")
    assert steps["ingest"].counts["parsed"] == 6
    with _db(tmp_path) as db:
        kept = db.execute("select count(*) from chunks where indexed_text like '%All rights reserved%'").fetchone()[0]
    assert kept >= 6


# settings, validation and missing libraries -----------------------------------------------------------------
def test_settings_are_strict() -> None:
    assert CleaningSettings().dedupe == "exact" and CleaningSettings().pii == "off"
    with pytest.raises(ValueError, match="dedupe"):
        CleaningSettings(dedupe="fuzzy")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="pii_types"):
        CleaningSettings(pii_types=["ssn"])  # type: ignore[list-item]


def test_validate_names_the_cleaning_extra_when_a_library_is_missing(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path, {"a.txt": "hello"})
    spec = tmp_path / "flightdeck.yaml"
    spec.write_text(SPEC.format(cleaning="{dedupe: near, sise: 3}"))
    _, problems = check_spec(spec)
    assert [p.location for p in problems] == ["data.cleaning.sise"]
    spec.write_text(SPEC.format(cleaning="{dedupe: near}"))
    assert check_spec(spec)[1] == []
    # the libraries are installed here; make them look absent the way find_spec reports it
    monkeypatch.setattr(cleaning_mod, "find_spec", lambda name: None)
    _, problems = check_spec(spec)
    by_loc = {p.location: p.message for p in problems}
    assert set(by_loc) == {"data.cleaning.language", "data.cleaning.dedupe"}
    assert all("pip install 'flightdeck[cleaning]'" in m for m in by_loc.values())
    assert "language: false" in by_loc["data.cleaning.language"]
    assert all(p.line == 5 for p in problems)
    spec.write_text(SPEC.format(cleaning="{language: false}"))
    assert check_spec(spec)[1] == []  # exact dedupe needs nothing extra


def test_run_refuses_before_reading_when_a_library_is_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path, {"a.txt": "hello there"})
    (tmp_path / "flightdeck.yaml").write_text(SPEC.format(cleaning="{}"))
    project = Project.load(tmp_path)
    project.use(embedder=FakeEmbedder())
    monkeypatch.setattr(cleaning_mod, "find_spec", lambda name: None)
    with pytest.raises(MissingDependencyError, match=r"data.cleaning.language.*flightdeck\[cleaning\]"):
        project.run()


def test_pii_redaction_without_the_cleaning_preprocessor_is_refused(tmp_path: Path) -> None:
    spec = tmp_path / "flightdeck.yaml"
    spec.write_text(SPEC.format(cleaning="{pii: redact}").replace(
        "  cleaning:", "  preprocessing: [tokenization, chunking, embedding_generation]\n  cleaning:"))
    _, problems = check_spec(spec)
    assert [p.location for p in problems] == ["data.cleaning.pii"]
    assert "add cleaning_normalization" in problems[0].message
