"""Reports of an evaluation run: JSON (everything), Markdown (a summary for CI comments) and one self-contained
HTML file (metric cards with deltas, charts, a filterable per-question table) that needs no network."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flightdeck.evaluation.reports.markdown import render_markdown

__all__ = ["REPORT_FORMAT", "write_reports", "render_markdown"]

REPORT_FORMAT = 1


def write_reports(report: dict[str, Any], folder: Path) -> dict[str, Path]:
    """Write ``report.json``, ``report.md`` and ``report.html`` into ``folder``; returns name → path."""
    from flightdeck.evaluation.reports.html import render_html

    folder.mkdir(parents=True, exist_ok=True)
    out = {"json": folder / "report.json", "markdown": folder / "report.md", "html": folder / "report.html"}
    out["json"].write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    out["markdown"].write_text(render_markdown(report), encoding="utf-8")
    out["html"].write_text(render_html(report), encoding="utf-8")
    return out
