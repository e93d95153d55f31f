"""A small real project for the tests of the framework integrations (:mod:`flightdeck.integrations`):
documents with filterable metadata, built once.

``build_adapter_project(root)`` writes a spec that uses the embedded defaults (the packaged
all-MiniLM-L6-v2, FAISS, SQLite FTS5), a few Markdown/HTML pages without ``lang``/``year`` metadata and
records that carry ``lang``, ``year`` and ``kind``, runs the pipeline and returns the loaded project.
Nothing is downloaded; it needs the ``embedded`` extra.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

__all__ = ["SPEC", "PAGES", "RECORDS", "QUERY", "build_adapter_project"]

SPEC = """\
project: adapter-tests
scoping: {use_case: rag, objective: retrieval_system}
data:
  sources:
    - {provider: files, path: ./docs}
  chunking: {provider: recursive, size: 64, overlap: 16}
retrieval:
  embedding_model: sentence_transformers
  vector_database: faiss
  system: [hybrid_search, metadata_filtering]
  search: {mode: hybrid, k: 5}
"""

PAGES = {
    "guide/install.md": """\
        # Installing Widgets

        Widgets are installed with the widget installer. Run `widget install` in a terminal.

        ## Troubleshooting

        If the installer stops with error W42, the sprockets are not aligned. Align them and run it again.
        """,
    "guide/care.html": """\
        <html><head><title>Caring for widgets</title></head><body>
        <h1>Caring for widgets</h1><p>Clean a widget with a soft cloth once a week. Never use water on the
        sprockets.</p><h2>Storage</h2><p>Store widgets in a dry place between 5 and 25 degrees Celsius.</p>
        </body></html>
        """,
}

# Records: their extra columns become chunk metadata that filters can select on.
RECORDS: list[dict[str, Any]] = [
    {"_id": "r1", "title": "Sprocket alignment", "lang": "en", "year": 2021, "kind": "faq",
     "text": "Align the sprockets before installing a widget; misaligned sprockets stop the installer."},
    {"_id": "r2", "title": "Sprocket-Ausrichtung", "lang": "de", "year": 2019, "kind": "faq",
     "text": "Richten Sie die Sprockets aus, bevor Sie ein Widget installieren."},
    {"_id": "r3", "title": "Widget storage", "lang": "en", "year": 2017, "kind": "guide",
     "text": "Keep widgets dry; sprockets rust when they get wet."},
    {"_id": "r4", "title": "Sprocket maintenance", "lang": "en", "year": 2023, "kind": "guide",
     "text": "Oil the sprockets every month; a dry sprocket squeaks and wears out the widget frame."},
    {"_id": "r5", "title": "Sprocket-Pflege", "lang": "de", "year": 2022, "kind": "guide",
     "text": "Ölen Sie die Sprockets jeden Monat, sonst quietschen sie."},
    {"_id": "r6", "title": "Sprocket sizes", "lang": "fr", "year": 2020, "kind": "faq",
     "text": "Les sprockets existent en trois tailles; choisissez la taille du cadre du widget."},
]

QUERY = "how do I align and look after the sprockets of a widget"


def build_adapter_project(root: Path) -> Any:
    """Write the corpus and spec under ``root``, run the pipeline, and return the :class:`~flightdeck.Project`."""
    from flightdeck.project import Project

    docs = root / "docs"
    for rel, body in PAGES.items():
        path = docs / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(body), encoding="utf-8")
    (docs / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in RECORDS), encoding="utf-8")
    (root / "flightdeck.yaml").write_text(SPEC, encoding="utf-8")
    project = Project.load(root)
    summary = project.run()
    if summary.status != "succeeded":
        raise RuntimeError(f"the adapter test project did not build: {summary}")
    return project
