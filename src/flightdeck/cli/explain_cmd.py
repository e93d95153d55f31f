"""``flightdeck explain``: which chunk supports each sentence of an answer, and why each chunk was retrieved."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from flightdeck.cli.common import JsonOption, SpecOption, errors_to_exit, print_json

__all__ = ["explain"]

SENTENCE_CHARS = 100


def explain(
    question: Annotated[str, typer.Argument(help="a question about the documents")],
    spec: SpecOption = None,
    as_json: JsonOption = False,
) -> None:
    """Answer the question, then explain it: each answer sentence with the chunk that supports it best and its
    support score, and each retrieved chunk with the vector and keyword (BM25) shares of its fused score and the
    SHAP values of its features (vector/keyword score and rank)."""
    from flightdeck.project import Project

    with errors_to_exit(as_json):
        explanation = Project.load(spec).explain(question)
    if as_json:
        print_json(explanation.to_dict())
    else:
        _print(explanation.to_dict())


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _signed(value: float) -> str:
    return f"{0.0 if abs(value) < 1e-9 else value:+.4g}"


def _print(e: dict[str, Any]) -> None:
    typer.echo(e["answer"])
    if e["sentences"]:
        typer.echo(f"\nsentences (supported when support >= {e['support_threshold']:.2f}):")
        for n, s in enumerate(e["sentences"], 1):
            text = s["sentence"] if len(s["sentence"]) <= SENTENCE_CHARS else s["sentence"][:SENTENCE_CHARS] + "…"
            verdict = "supported" if s["supported"] else "UNSUPPORTED"
            typer.echo(f"  {n}. {text}")
            typer.echo(f"     <- chunk {s['chunk_id'] or '-'}  support {s['support']:.3f} ({verdict})")
    elif not e["found"]:
        typer.echo("\n(no answer was found: no sentence to support)")
    r = e["retrieval"]
    keyword = r["keyword_index"] or "keyword"
    typer.echo(f"\nhits (fusion {r['fusion']}: {r['formula']})")
    weights = f"weights vector {r['weights']['vector']:g}, {keyword} {r['weights']['keyword']:g}"
    if r["rrf_k"] is not None:
        weights += f", rrf_k {r['rrf_k']}"
    if r["base_value"] is not None:
        weights += f"; SHAP base value {r['base_value']:.4f} (mean fused score of {r['candidates']} candidates)"
    typer.echo(f"  {weights}")
    for h in r["hits"]:
        where = h["title"] + (f" § {h['heading']}" if h["heading"] else "")
        cited = "  [cited]" if h["cited"] else ""
        typer.echo(f"  #{h['rank']} {h['chunk_id']}  {where}  score {h['score']:.4f}{cited}")
        parts = []
        for name, label in (("vector", "vector"), ("keyword", keyword)):
            rank, score = h["features"][f"{name}_rank"], h["features"][f"{name}_score"]
            seen = f"rank {rank}, score {score:.4f}" if rank is not None else "not retrieved"
            parts.append(f"{label} {_pct(h['shares'][name])} ({seen})")
        typer.echo("     " + "  ".join(parts))
        if h["shap_values"]:
            typer.echo("     SHAP: " + ", ".join(f"{k} {_signed(v)}" for k, v in h["shap_values"].items()))
    for note in e["notes"]:
        typer.echo(f"note: {note}")
