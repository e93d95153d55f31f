"""The ``openai`` embedder against a real OpenAI-compatible server: llama-cpp-python's, serving Gemma 3 270M.

No OpenAI account is used: api.openai.com is never called. Everything the SDK does over HTTP (auth header,
batching, errors, retries switched off for speed) goes to the llama.cpp server that conftest.py starts.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

from flightdeck import Project
from flightdeck.registry import Category, registry
from flightdeck.retrieval.embedders.openai import OpenAIConfig, OpenAIEmbedder, OpenAIEmbedderError

httpx = pytest.importorskip("httpx")

pytestmark = pytest.mark.integration

GEMMA_3_270M_DIM = 640  # hidden size of Gemma 3 270M


def make(server, **settings) -> OpenAIEmbedder:  # noqa: ANN001 - LlamaServer from conftest
    settings = {"base_url": server.base_url, "model": server.model, "api_key": server.api_key, **settings}
    return OpenAIEmbedder(OpenAIConfig(**settings))


def raw(server, texts: list[str], model: str | None = None) -> httpx.Response:  # noqa: ANN001
    """POST /v1/embeddings straight to the server, without flightdeck or the SDK."""
    return httpx.post(f"{server.base_url}/embeddings", json={"model": model or server.model, "input": texts},
                      headers={"Authorization": f"Bearer {server.api_key}"}, timeout=60)


def raw_vectors(server, texts: list[str]) -> np.ndarray:  # noqa: ANN001
    res = raw(server, texts)
    res.raise_for_status()
    return np.array([d["embedding"] for d in sorted(res.json()["data"], key=lambda d: d["index"])],
                    dtype=np.float32)


def cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_vectors_are_the_servers_scaled_to_unit_length(llama_server) -> None:  # noqa: ANN001
    texts = ["Widgets are stored in a dry place.", "The train leaves at nine.", "Sprockets must be aligned."]
    emb = make(llama_server)
    assert emb.dimension == GEMMA_3_270M_DIM  # learned by warm_up from one request
    vectors = emb.embed_documents(texts)
    assert vectors.shape == (3, GEMMA_3_270M_DIM) and vectors.dtype == np.float32
    assert vectors.flags["C_CONTIGUOUS"]
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    server = raw_vectors(llama_server, texts)
    assert not np.allclose(np.linalg.norm(server, axis=1), 1.0, atol=1e-2)  # llama.cpp does not normalise
    np.testing.assert_allclose(vectors, server / np.linalg.norm(server, axis=1, keepdims=True), atol=1e-5)
    as_served = make(llama_server, normalize=False).embed_documents(texts)
    np.testing.assert_allclose(as_served, server, rtol=1e-5, atol=1e-5)
    assert make(llama_server, normalize=False).model_id != emb.model_id
    query = emb.embed_query(texts[0])
    assert query.shape == (GEMMA_3_270M_DIM,) and abs(float(np.linalg.norm(query)) - 1.0) < 1e-5


def test_texts_are_sent_in_batches_of_batch_size_and_keep_their_order(llama_server, monkeypatch) -> None:  # noqa: ANN001
    texts = [f"Sentence number {i} is about {topic}." for i, topic in
             enumerate(["cats", "trains", "bread", "rain", "chess"])]
    emb = make(llama_server, batch_size=2)
    sizes: list[int] = []
    request = emb._request

    def counting(batch: list[str]) -> np.ndarray:
        sizes.append(len(batch))
        return request(batch)

    monkeypatch.setattr(emb, "_request", counting)
    vectors = emb.embed_documents(texts)
    assert sizes == [2, 2, 1] and vectors.shape == (5, GEMMA_3_270M_DIM)
    one_by_one = make(llama_server)
    for text, vector in zip(texts, vectors, strict=True):
        assert cos(vector, one_by_one.embed_query(text)) > 0.999
    assert emb.embed_documents([]).shape == (0, GEMMA_3_270M_DIM)


def test_query_and_document_prefixes_are_prepended(llama_server) -> None:  # noqa: ANN001
    prefixed = make(llama_server, query_prefix="search_query: ", document_prefix="search_document: ")
    plain = make(llama_server)
    text = "where are widgets kept"
    query, doc = prefixed.embed_query(text), prefixed.embed_documents([text])[0]
    np.testing.assert_allclose(query, plain.embed_query("search_query: " + text), atol=1e-5)
    np.testing.assert_allclose(doc, plain.embed_documents(["search_document: " + text])[0], atol=1e-5)
    assert cos(query, doc) < 0.9999 and cos(query, plain.embed_query(text)) < 0.9999
    # stored vectors change with the document prefix only: a new query prefix needs no re-embedding
    assert prefixed.model_id != plain.model_id
    assert make(llama_server, query_prefix="q: ").model_id == plain.model_id


def test_a_similar_sentence_scores_higher_than_an_unrelated_one(llama_server) -> None:  # noqa: ANN001
    emb = make(llama_server)
    query = emb.embed_query("How do I reset my password?")
    related, unrelated = emb.embed_documents([
        "To reset a forgotten password, click 'Forgot password' on the sign-in page.",
        "The recipe needs two cups of flour and one egg."])
    assert float(query @ related) > float(query @ unrelated) + 0.05


def test_model_id_names_the_host_the_model_and_the_dimensions(llama_server) -> None:  # noqa: ANN001
    emb = make(llama_server)
    host = llama_server.base_url.split("//")[1].split("/")[0]
    assert emb.model_id.startswith(f"openai:{host}/gemma-3-270m@native/")
    assert make(llama_server, dimensions=256).model_id.startswith(f"openai:{host}/gemma-3-270m@256/")
    assert OpenAIEmbedder(OpenAIConfig(model="text-embedding-3-small", api_key="sk-x")).model_id.startswith(
        "openai:api.openai.com/text-embedding-3-small@native/")


def test_max_tokens_and_tokenizer_folder(llama_server, tmp_path: Path) -> None:  # noqa: ANN001
    from flightdeck.data.tokenization import Tokenizer

    assert OpenAIEmbedder(OpenAIConfig(api_key="sk-x")).max_tokens == 8191  # OpenAI's models, no request
    # llama-cpp-python does not report its context in GET /models: the fallback applies
    assert make(llama_server).max_tokens == 512
    assert make(llama_server, max_tokens=300).max_tokens == 300
    emb = make(llama_server)
    assert (Path(emb.model_dir) / "tokenizer.json").is_file()  # the packaged all-MiniLM-L6-v2 approximation
    assert Tokenizer.from_model_dir(emb.model_dir).count("Widgets are stored in a dry place.") > 5
    with pytest.raises(OpenAIEmbedderError, match="has no tokenizer.json"):
        make(llama_server, tokenizer=str(tmp_path))


def test_an_unreachable_server_is_named_in_the_error(unused_port: int) -> None:
    port = unused_port
    emb = OpenAIEmbedder(OpenAIConfig(base_url=f"http://127.0.0.1:{port}/v1", model="m", max_retries=0,
                                      timeout=5))
    with pytest.raises(OpenAIEmbedderError, match=rf"server at http://127\.0\.0\.1:{port}/v1 could not be "
                                                  r"reached .*Start the server, or fix `base_url`"):
        emb.embed_documents(["hello"])
    with pytest.raises(OpenAIEmbedderError, match="could not be reached"):
        emb.warm_up()


def test_a_wrong_key_says_which_setting_holds_it(llama_server, monkeypatch) -> None:  # noqa: ANN001
    with pytest.raises(OpenAIEmbedderError, match=r"refused the API key from the `api_key` setting \(401"):
        make(llama_server, api_key="wrong", max_retries=0).embed_documents(["hello"])
    monkeypatch.setenv("OPENAI_API_KEY", "also-wrong")
    # $OPENAI_API_KEY goes only to OpenAI and to $OPENAI_BASE_URL: to a base_url of the spec, nothing is sent
    emb = OpenAIEmbedder(OpenAIConfig(base_url=llama_server.base_url, model=llama_server.model, max_retries=0))
    with pytest.raises(OpenAIEmbedderError, match=r"wants an API key \(401.* and none was sent: the OPENAI_API_KEY "
                                                  r"environment variable is sent only to"):
        emb.warm_up()
    monkeypatch.setenv("OPENAI_BASE_URL", llama_server.base_url)  # the environment pairs its key with its URL
    emb = OpenAIEmbedder(OpenAIConfig(model=llama_server.model, max_retries=0))
    with pytest.raises(OpenAIEmbedderError, match="from the OPENAI_API_KEY environment variable"):
        emb.warm_up()


def test_openai_without_a_key_asks_for_one_before_any_request(monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(OpenAIEmbedderError, match=r"needs an API key for https://api\.openai\.com/v1: set the "
                                                  r"OPENAI_API_KEY environment variable, or `api_key:"):
        OpenAIEmbedder(OpenAIConfig()).embed_query("hello")


def test_a_model_the_server_does_not_list_is_refused(llama_server) -> None:  # noqa: ANN001
    # llama-cpp-python answers for any model name with the one model it has ...
    assert raw(llama_server, ["hello"], model="text-embedding-3-small").status_code == 200
    # ... so the embedder checks GET /models and refuses instead of mixing up models silently
    emb = make(llama_server, model="text-embedding-3-small")
    with pytest.raises(OpenAIEmbedderError, match=r"does not serve model 'text-embedding-3-small'\. Set `model` "
                                                  r"under retrieval\.embedding_model to one it lists: gemma-3-270m"):
        emb.warm_up()
    with pytest.raises(OpenAIEmbedderError, match="does not serve model"):
        emb.embed_query("hello")


def test_a_wrong_path_gets_the_servers_404_with_what_to_check(llama_server) -> None:  # noqa: ANN001
    emb = make(llama_server, base_url=llama_server.base_url.removesuffix("/v1") + "/v2", max_retries=0)
    with pytest.raises(OpenAIEmbedderError, match=r"/v2/embeddings answered 404 for model 'gemma-3-270m'.*"
                                                  r"Check `model` under retrieval\.embedding_model and `base_url`"):
        emb.embed_documents(["hello"])


def test_token_level_vectors_are_refused_with_the_fix(gemma_gguf: Path, start_llama_server, tmp_path: Path) -> None:  # noqa: ANN001
    with start_llama_server(gemma_gguf, tmp_path, pooling=False) as unpooled:
        with pytest.raises(OpenAIEmbedderError, match="one vector per token instead of one per text"):
            make(unpooled).embed_documents(["hello world", "a cat"])


def test_without_the_sdk_the_error_names_the_extra(monkeypatch) -> None:  # noqa: ANN001
    import sys

    from flightdeck.errors import MissingDependencyError

    monkeypatch.setitem(sys.modules, "openai", None)  # as if the openai package were not installed
    emb = OpenAIEmbedder(OpenAIConfig(base_url="http://127.0.0.1:9/v1", model="m"))  # building needs no SDK
    with pytest.raises(MissingDependencyError, match=r"embedder 'openai' needs: pip install 'flightdeck\[openai\]'"):
        emb.embed_query("hello")


def test_the_registry_builds_it_from_spec_settings(llama_server) -> None:  # noqa: ANN001
    emb = registry().create(Category.EMBEDDER, "openai", {"base_url": llama_server.base_url,
                                                          "model": llama_server.model,
                                                          "api_key": llama_server.api_key, "batch_size": 8})
    assert isinstance(emb, OpenAIEmbedder) and emb.config.batch_size == 8
    assert "flightdeck-test-key" not in repr(emb.config)  # the key stays a secret in reprs and logs


DOCS = {
    "accounts.md": """\
        # Accounts

        ## Passwords

        To reset a forgotten password, click "Forgot password" on the sign-in page and follow the e-mail link.
        """,
    "kitchen.md": """\
        # Baking bread

        Mix flour, water, salt and yeast. Let the dough rise for two hours, then bake it at 220 degrees.
        """,
    "trains.txt": "The night train to Vienna leaves platform 4 at 22:15 and arrives at 07:30.\n",
}

SPEC = """\
project: openai-embedder
scoping: {use_case: rag, objective: retrieval_system}
data:
  sources:
    - {provider: files, path: ./docs}
  chunking: {provider: recursive, size: 64, overlap: 8}
retrieval:
  embedding_model:
    provider: openai
    base_url: ${FD_TEST_LLAMA_URL}
    api_key: ${FD_TEST_LLAMA_KEY}
    model: gemma-3-270m
    batch_size: 2
  vector_database: faiss
  system: [hybrid_search]
  search: {mode: hybrid, k: 3}
"""


@pytest.mark.exercises("retrieval.embedding_model.openai")
def test_a_project_ingests_embeds_indexes_and_searches_through_the_server(
        llama_server, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("FD_TEST_LLAMA_URL", llama_server.base_url)
    monkeypatch.setenv("FD_TEST_LLAMA_KEY", llama_server.api_key)
    for rel, body in DOCS.items():
        (tmp_path / "docs" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "docs" / rel).write_text(textwrap.dedent(body), encoding="utf-8")
    (tmp_path / "flightdeck.yaml").write_text(SPEC, encoding="utf-8")
    assert "FD_TEST_LLAMA_KEY" in (tmp_path / "flightdeck.yaml").read_text()  # the spec holds a reference only

    project = Project.load(tmp_path)
    assert project.embedder.config.model == "gemma-3-270m", (
        "Project.embedder turned the model *name* into a path: it must resolve only the settings the config "
        "lists in `path_settings` (OpenAIConfig: tokenizer)")
    summary = project.run()
    assert summary.status == "succeeded"
    steps = {s.step: s for s in summary.steps}
    assert steps["embed"].counts["embedded"] >= 3
    emb = project.embedder
    assert isinstance(emb, OpenAIEmbedder)
    assert emb.model_id.startswith(f"openai:{llama_server.base_url.split('//')[1].split('/')[0]}/gemma-3-270m@")
    assert emb.dimension == GEMMA_3_270M_DIM

    hits = project.search("I forgot my password, how can I set a new one?", mode="vector", k=3).hits
    assert hits[0].document_id == "docs/accounts.md" and "Forgot password" in hits[0].text
    hits = project.search("when does the night train to Vienna depart", mode="vector", k=3).hits
    assert hits[0].document_id == "docs/trains.txt"

    again = {s.step: s for s in Project.load(tmp_path).run().steps}
    assert again["embed"].status == "skipped"  # unchanged inputs and model_id: nothing is sent again
