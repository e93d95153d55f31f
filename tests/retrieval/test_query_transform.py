"""Query transformations (rewrite, multi-query, HyDE) with the real llama.cpp generator on a real index."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from flightdeck.retrieval.query_transform import parse_lines
from flightdeck.spec.loader import check_spec


def test_parse_lines_keeps_distinct_queries_only() -> None:
    text = textwrap.dedent("""\
        Here are three queries:
        1. widget sprocket alignment error
        - "W42 installer error"
        * widget sprocket alignment error
        how do I fix error W42?
        q4: extra line beyond the limit
        """)
    assert parse_lines(text, "How do I fix error W42?", 3) == ["widget sprocket alignment error",
                                                              "W42 installer error", "extra line beyond the limit"]
    assert parse_lines("x" * 1000, "q", 1)[0] == "x" * 400  # one unbroken word is cut hard at the limit
    assert parse_lines("\n\n", "q", 3) == []


def _spec(tmp_path: Path, gguf: Path, transform: str, system: str = "[hybrid_search, query_transformation]",
          generator: str | None = None) -> Path:
    from conftest import SPEC, write_docs

    write_docs(tmp_path)
    generator = generator or f"{{provider: llama_cpp, model_path: {gguf}, n_threads: 2}}"
    text = SPEC.format(size=128).replace("system: [hybrid_search]", f"system: {system}")
    text = text.replace("  search: {mode: hybrid, k: 5}", f"  search: {{mode: hybrid, k: 5}}\n"
                                                          f"  query_transformation: {transform}")
    text += f"model:\n  generator: {generator}\n"
    path = tmp_path / "flightdeck.yaml"
    path.write_text(text)
    return path


class _Counting:
    """Wraps the session's llama.cpp generator to count its completions."""

    def __init__(self, inner) -> None:  # noqa: ANN001
        self.inner, self.calls = inner, 0

    def complete(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201
        self.calls += 1
        return self.inner.complete(*args, **kwargs)


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory, gemma_gguf: Path) -> Path:
    """One small index shared by the transformation tests (the spec is rewritten per test)."""
    from flightdeck import Project

    folder = tmp_path_factory.mktemp("qt")
    Project.load(_spec(folder, gemma_gguf, "rewrite")).run()
    return folder


@pytest.mark.exercises("retrieval.system.query_transformation")
@pytest.mark.parametrize("transform, labels", [
    ("rewrite", {"original", "rewrite"}),
    ("{provider: multi_query, queries: 3}", {"original", "q1", "q2", "q3"}),
    ("hyde", {"hyde"}),
])
def test_each_transformation_searches_its_variants_and_fuses_them(indexed: Path, gemma_gguf: Path,
                                                                  llama_generator, transform: str,
                                                                  labels: set[str]) -> None:
    from flightdeck import Project

    project = Project.load(_spec(indexed, gemma_gguf, transform))
    counting = _Counting(llama_generator)
    project.query_transformation.generator = counting
    query = "Which error means the sprockets are not aligned?"
    result = project.search(query, k=5)
    got = {v["label"] for v in result.queries}
    # the model really transformed the query: at least one variant that is not the query itself was searched
    # (a transformation that did nothing would leave only the original, or no passage)
    assert got <= labels and ("original" in got or transform == "hyde"), result.queries
    assert result.hits and result.timings_ms["transform"] > 0
    assert any("W42" in h.text for h in result.hits)
    plain = project.search(query, k=5, transform=False)
    if transform == "hyde":
        (variant,) = result.queries
        assert variant["keyword"] == query and variant["vector_query"] == query
        (passage,) = variant["passages"]  # exactly one hypothetical passage, and not an echo of the query
        assert passage.strip().lower() != query.lower() and len(passage.split()) >= 3
        assert set(result.hits[0].ranks) <= {"keyword", "vector"}
        assert [h.score for h in result.hits] != [h.score for h in plain.hits]  # the passage moved the vector
    else:
        rewritten = [v for v in result.queries if v["label"] != "original"]
        assert rewritten, f"{transform} searched no rewritten query: {result.queries}"
        for v in rewritten:
            assert v["keyword"].strip().lower() != query.lower() and v["vector_query"] == v["keyword"]
        # every variant's lists were searched and fused: ranks are named per variant
        names = {name for h in result.hits for name in h.ranks}
        assert {f"keyword:{label}" for label in got} <= names
        assert {f"vector:{label}" for label in got} <= names
    calls = counting.calls
    assert calls == 1
    project.search(query, k=5)  # the same query again: served from the transformation's cache
    assert counting.calls == calls
    assert plain.queries == [] and "transform" not in plain.timings_ms


class _Scripted:
    """Stands in for the LLM where a test needs a known output (the real model's text is not predictable)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def complete(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201
        from flightdeck.models.generators.base import Completion

        return Completion(self.text, 10, 10, "stop", 1.0)


def test_hyde_searches_by_the_passage_vector_and_skips_an_echo(indexed: Path, gemma_gguf: Path) -> None:
    import numpy as np

    from flightdeck import Project

    project = Project.load(_spec(indexed, gemma_gguf, "hyde"))
    query = "What do I need before installing?"
    passage = "A widget needs a frame, two sprockets and a license key printed on the box."
    project.query_transformation.generator = _Scripted(passage)
    (variant,) = project.query_transformation.variants(query)
    assert variant.passages == (passage,) and variant.keyword == query
    emb = project.embedder
    expected = np.mean([emb.embed_query(query), emb.embed_documents([passage])[0]], axis=0)
    got = project.searcher._query_vector(variant)
    assert np.allclose(got, expected / np.linalg.norm(expected), atol=1e-5)
    hyde = project.search(query, k=3, mode="vector")
    plain = project.search(query, k=3, mode="vector", transform=False)
    assert hyde.hits[0].text.startswith("A widget needs") or "sprockets" in hyde.hits[0].text
    assert [h.score for h in hyde.hits] != [h.score for h in plain.hits]  # the passage moved the vector
    echo = Project.load(_spec(indexed, gemma_gguf, "hyde"))
    echo.query_transformation.generator = _Scripted(query.upper())
    assert echo.query_transformation.variants(query)[0].passages == ()


def test_the_cli_shows_the_searched_variants(indexed: Path, gemma_gguf: Path) -> None:
    import json

    from typer.testing import CliRunner

    from flightdeck.cli.main import app

    spec = _spec(indexed, gemma_gguf, "rewrite")
    out = CliRunner().invoke(app, ["search", "sprocket alignment error", "--spec", str(spec), "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["queries"][0] == {"label": "original", "keyword": "sprocket alignment error",
                                  "vector_query": "sprocket alignment error", "passages": []}
    plain = CliRunner().invoke(app, ["search", "sprocket alignment error", "--spec", str(spec), "--no-transform"])
    assert plain.exit_code == 0 and "searched [" not in plain.output


def test_validate_ties_the_option_the_key_and_an_llm_generator_together(tmp_path: Path, gemma_gguf: Path) -> None:
    def problems(**kw: str) -> list[str]:
        _, found = check_spec(_spec(tmp_path, gemma_gguf, **kw))
        return [f"{p.location}: {p.message}" for p in found]

    assert problems(transform="multi_query") == []
    assert any("query_transformation is not in retrieval.system" in m
               for m in problems(transform="hyde", system="[hybrid_search]"))
    assert any("needs an LLM generator" in m and "extractive" in m
               for m in problems(transform="hyde", generator="extractive"))
    assert any("'hyed'" in m and "hyde" in m for m in problems(transform="hyed"))
    assert any("queries" in m for m in problems(transform="{provider: multi_query, queries: 0}"))
    spec = _spec(tmp_path, gemma_gguf, "hyde")
    spec.write_text(spec.read_text().replace("  query_transformation: hyde\n", ""))
    _, found = check_spec(spec)
    assert any("needs retrieval.query_transformation" in p.message for p in found)
