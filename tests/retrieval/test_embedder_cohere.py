"""The cohere embedder through the real ``cohere`` SDK, against replayed HTTP exchanges.

No Cohere server can run here: requests go through an ``httpx.MockTransport`` handed to the SDK, which
answers with bodies written from Cohere's API reference (fixtures/cohere, see its README). What is real:
the SDK, its request serialisation and response parsing, our batching, retries, errors and normalisation.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from flightdeck import Project
from flightdeck.data.tokenization import Tokenizer
from flightdeck.errors import FlightdeckError
from flightdeck.registry import Category, registry
from flightdeck.retrieval.embedders.base import Embedder
from flightdeck.retrieval.embedders.cohere import KNOWN_DIMENSIONS, CohereConfig, CohereEmbedder, CohereError
from flightdeck.retrieval.embedders.sentence_transformers import packaged_model_dir

httpx = pytest.importorskip("httpx")

FIXTURES = Path(__file__).parent / "fixtures" / "cohere"
KEY = "test-key-0123"

SPEC = """\
project: embedder-test
scoping: {{use_case: rag, objective: retrieval_system}}
data:
  sources:
    - {{provider: files, path: ./docs}}
  chunking: {{provider: recursive, size: 64, overlap: 16}}
retrieval:
  embedding_model: {embedder}
  vector_database: faiss
  system: [hybrid_search]
  search: {{mode: hybrid, k: 5}}
"""

DOCS = {
    "guide/install.md": "# Installing Widgets\n\nWidgets are installed with the widget installer. Run `widget install`"
                        " in a terminal.\n\n## Troubleshooting\n\nIf the installer stops with error W42, the sprockets"
                        " are not aligned. Align them and run it again.\n",
    "guide/care.md": "# Caring for widgets\n\nClean a widget with a soft cloth once a week. Never use water on the"
                     " sprockets.\n\n## Storage\n\nStore widgets in a dry place between 5 and 25 degrees Celsius.\n",
    "notes.txt": "Widget colours: red, blue and green. Green widgets are the most popular in spring.\n",
}


@pytest.fixture
def cohere_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let a spec choose cohere, as it will once a real Cohere endpoint proves it.

    Cohere is `planned` (no Cohere server can run here: these exchanges are replayed), so `validate` refuses
    it like weaviate and pinecone; the tests below check what the provider does inside a project.
    """
    import flightdeck.spec.loader as loader_mod
    from flightdeck.spec.status import OptionStatus

    real = loader_mod.option_usable

    def usable(key: str) -> OptionStatus:
        return OptionStatus("ready", "cohere (test)") if key == "retrieval.embedding_model.cohere" else real(key)

    monkeypatch.setattr(loader_mod, "option_usable", usable)


def test_a_spec_choosing_cohere_is_refused_as_planned_and_says_why(tmp_path: Path) -> None:
    write_project(tmp_path, "{provider: cohere, model: embed-v4.0}")
    with pytest.raises(FlightdeckError, match=r"'cohere' .* is planned: no Cohere server can run here"):
        Project.load(tmp_path)


def write_project(root: Path, embedder: str) -> None:
    """A spec with ``embedder`` and a three-document corpus under ``root``."""
    for rel, body in DOCS.items():
        path = root / "docs" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body, encoding="utf-8")
    (root / "flightdeck.yaml").write_text(SPEC.format(embedder=embedder), encoding="utf-8")


def _fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())


def word_vector(text: str, dim: int) -> list[float]:
    """A deterministic stand-in for Cohere's vectors: hashed words, not unit length (as Cohere's need not be)."""
    vec = np.full(dim, 0.01)
    for word in re.findall(r"[a-z0-9]+", text.lower()):
        h = int(hashlib.sha256(word.encode()).hexdigest(), 16)
        vec[h % dim] += 1.0 + (h >> 64) % 3
    return vec.tolist()


class ReplayedCohere:
    """Answers ``POST /v2/embed`` like Cohere's API reference says; records every request."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.script: list[tuple[int, dict[str, str], str]] = []  # (status, headers, fixture) served first

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r.content) for r in self.requests]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.method != "POST" or request.url.path != "/v2/embed":
            return httpx.Response(404, json={"message": f"no route {request.method} {request.url.path}"})
        if request.headers.get("authorization") != f"Bearer {KEY}":
            return httpx.Response(401, json=_fixture("error_401.json"))
        if self.script:
            status, headers, name = self.script.pop(0)
            return httpx.Response(status, headers=headers, json=_fixture(name))
        body = json.loads(request.content)
        reference = _fixture("embed_response.json")
        if body["texts"] == reference["texts"] and body["model"] not in KNOWN_DIMENSIONS:
            return httpx.Response(200, json=reference)  # the reference's own example, as it is
        dim = body.get("output_dimension") or KNOWN_DIMENSIONS[body["model"]]
        answer = copy.deepcopy(reference)
        answer["texts"] = body["texts"]
        answer["embeddings"] = {"float": [word_vector(t, dim) for t in body["texts"]]}
        answer["meta"]["billed_units"]["input_tokens"] = sum(len(t.split()) for t in body["texts"])
        return httpx.Response(200, json=answer)

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self))


@pytest.fixture
def server() -> ReplayedCohere:
    return ReplayedCohere()


def make(server: ReplayedCohere, **settings: Any) -> CohereEmbedder:
    emb = CohereEmbedder(CohereConfig(**{"api_key": KEY, **settings}), httpx_client=server.client())
    emb._sleep = lambda seconds: server.requests.append(("sleep", seconds))  # type: ignore[arg-type,assignment]
    return emb


def _sleeps(server: ReplayedCohere) -> list[float]:
    return [r[1] for r in server.requests if isinstance(r, tuple)]


def _http(server: ReplayedCohere) -> list[httpx.Request]:
    return [r for r in server.requests if isinstance(r, httpx.Request)]


@pytest.mark.integration
def test_documents_and_queries_are_sent_with_their_input_type(server: ReplayedCohere) -> None:
    emb = make(server)
    docs = emb.embed_documents(["Widgets are installed.", "Sprockets must be aligned."])
    query = emb.embed_query("how are widgets installed")
    first, second = server.bodies
    assert first == {"texts": ["Widgets are installed.", "Sprockets must be aligned."], "model": "embed-english-v3.0",
                     "input_type": "search_document", "embedding_types": ["float"], "truncate": "END"}
    assert second["input_type"] == "search_query" and second["texts"] == ["how are widgets installed"]
    request = server.requests[0]
    assert str(request.url) == "https://api.cohere.com/v2/embed"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    # normalised to unit length, in the order sent, float32
    assert docs.shape == (2, 1024) and docs.dtype == np.float32 and query.shape == (1024,)
    assert np.allclose(np.linalg.norm(docs, axis=1), 1.0, atol=1e-6)
    raw = np.array(word_vector("Sprockets must be aligned.", 1024))
    assert np.allclose(docs[1], raw / np.linalg.norm(raw), atol=1e-6)
    assert isinstance(emb, Embedder) and emb.dimension == 1024 and emb.max_tokens == 512


@pytest.mark.integration
def test_the_reference_response_is_parsed_and_normalised(server: ReplayedCohere) -> None:
    emb = make(server, model="embed-custom-model")  # a model we know no size of: learnt from the answer
    vectors = emb.embed_documents(["hello", "goodbye"])
    reference = np.array(_fixture("embed_response.json")["embeddings"]["float"], dtype=np.float32)
    assert vectors.shape == (2, 8) and emb.dimension == 8
    assert np.allclose(vectors, reference / np.linalg.norm(reference, axis=1, keepdims=True), atol=1e-6)
    assert np.linalg.norm(reference[0]) < 0.2  # the reference's raw vectors are far from unit length


@pytest.mark.integration
def test_more_than_96_texts_go_in_two_requests_in_order(server: ReplayedCohere) -> None:
    texts = [f"document number {i} about topic t{i % 7}" for i in range(150)]
    vectors = make(server).embed_documents(texts)
    assert [len(b["texts"]) for b in server.bodies] == [96, 54]
    assert server.bodies[0]["texts"] + server.bodies[1]["texts"] == texts
    expected = np.array([word_vector(t, 1024) for t in texts])
    assert np.allclose(vectors, expected / np.linalg.norm(expected, axis=1, keepdims=True), atol=1e-6)
    with pytest.raises(ValidationError, match="less than or equal to 96"):
        CohereConfig(batch_size=97)


@pytest.mark.integration
def test_a_429_is_retried_after_retry_after_then_succeeds(server: ReplayedCohere) -> None:
    server.script = [(429, {"retry-after": "2"}, "error_429.json")]
    vector = make(server).embed_query("sprockets")
    assert len(_http(server)) == 2 and _sleeps(server) == [2.0]
    raw = np.array(word_vector("sprockets", 1024))
    assert np.allclose(vector, raw / np.linalg.norm(raw), atol=1e-6)


@pytest.mark.integration
def test_5xx_answers_back_off_exponentially(server: ReplayedCohere) -> None:
    server.script = [(503, {}, "error_503.json"), (503, {}, "error_503.json"), (429, {}, "error_429.json")]
    make(server, backoff_seconds=0.5, max_backoff_seconds=1.5).embed_documents(["a widget"])
    assert len(_http(server)) == 4 and _sleeps(server) == [0.5, 1.0, 1.5]


@pytest.mark.integration
def test_retries_run_out_with_a_clear_error(server: ReplayedCohere) -> None:
    server.script = [(429, {}, "error_429.json")] * 3
    with pytest.raises(CohereError, match=r"failed after 3 attempts \(HTTP 429: You are using a Trial key.*"
                                          r"request id 0b7e9f4a.*the rate limit holds"):
        make(server, max_retries=2, backoff_seconds=0).embed_documents(["a widget"])
    assert len(_http(server)) == 3


@pytest.mark.integration
def test_a_wrong_key_gives_a_401_error_at_once(server: ReplayedCohere) -> None:
    emb = make(server, api_key="not-the-key")
    with pytest.raises(CohereError, match=r"rejected the API key \(HTTP 401: invalid api token.*\) at POST "
                                          r"https://api.cohere.com/v2/embed; check `api_key`"):
        emb.embed_documents(["a widget"])
    assert len(_http(server)) == 1 and _sleeps(server) == []  # never retried


@pytest.mark.integration
def test_no_key_at_all_says_how_to_set_one(server: ReplayedCohere, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CO_API_KEY", raising=False)
    emb = CohereEmbedder(CohereConfig(), httpx_client=server.client())
    with pytest.raises(CohereError, match=r"no Cohere API key: set `api_key: \$\{CO_API_KEY\}`"):
        emb.embed_query("x")
    monkeypatch.setenv("CO_API_KEY", KEY)  # the SDK's own variable is the fallback
    assert CohereEmbedder(CohereConfig(), httpx_client=server.client()).embed_query("x").shape == (1024,)


@pytest.mark.integration
def test_embed_v4_sends_output_dimension_and_base_url_is_used(server: ReplayedCohere) -> None:
    emb = make(server, model="embed-v4.0", dimension=256, base_url="https://cohere.internal.example/")
    vectors = emb.embed_documents(["a widget", "a sprocket"])
    assert vectors.shape == (2, 256) and emb.dimension == 256
    assert server.bodies[0]["output_dimension"] == 256 and server.bodies[0]["model"] == "embed-v4.0"
    assert str(server.requests[0].url) == "https://cohere.internal.example/v2/embed"
    make(server, model="embed-english-v3.0").embed_query("x")
    assert "output_dimension" not in server.bodies[-1]  # v3 models have one fixed size


@pytest.mark.integration
def test_an_answer_of_the_wrong_size_is_refused(server: ReplayedCohere) -> None:
    emb = make(server, model="embed-v4.0", dimension=512)
    server.script = [(200, {}, "embed_response.json")]  # 2 vectors of 8 numbers, whatever was asked
    with pytest.raises(CohereError, match="returned 2 vectors for 1 texts"):
        emb.embed_query("x")
    server.script = [(200, {}, "embed_response.json")]
    with pytest.raises(CohereError, match="returned 8-d vectors for model embed-v4.0, expected 512"):
        emb.embed_documents(["hello", "goodbye"])


@pytest.mark.unit
def test_dimension_settings_that_the_model_cannot_give_are_refused() -> None:
    with pytest.raises(ValidationError, match="embed-english-v3.0 always returns 1024-d vectors"):
        CohereConfig(model="embed-english-v3.0", dimension=512)
    with pytest.raises(ValidationError, match="set dimension to one of those, not 300"):
        CohereConfig(model="embed-v4.0", dimension=300)
    assert CohereConfig(model="embed-english-light-v3.0").output_dimension is None
    assert CohereEmbedder(CohereConfig(model="embed-english-light-v3.0")).dimension == 384


@pytest.mark.unit
def test_the_tokenizer_setting_is_the_model_dir_that_chunking_counts_with(tmp_path: Path) -> None:
    default = CohereEmbedder()
    assert default.model_dir == str(packaged_model_dir())
    assert Tokenizer.from_model_dir(default.model_dir).count("Widgets need two sprockets.") > 0
    own = tmp_path / "tok"
    own.mkdir()
    data = json.loads((packaged_model_dir() / "tokenizer.json").read_text())
    data["normalizer"] = None  # another tokenizer: e.g. case-sensitive
    (own / "tokenizer.json").write_text(json.dumps(data))
    other = CohereEmbedder(CohereConfig(tokenizer=str(own)))
    assert other.model_dir == str(own)
    # chunks depend on the tokenizer and the pipeline keys chunking by model_id: so must the id
    ids = {default.model_id, other.model_id, CohereEmbedder(CohereConfig(truncate="START")).model_id,
           CohereEmbedder(CohereConfig(model="embed-v4.0")).model_id,
           CohereEmbedder(CohereConfig(model="embed-v4.0", dimension=512)).model_id}
    assert len(ids) == 5 and default.model_id.startswith("cohere:embed-english-v3.0@")
    assert CohereEmbedder(CohereConfig(batch_size=10, max_retries=1)).model_id == default.model_id
    with pytest.raises(ValidationError, match="has no tokenizer.json"):
        CohereConfig(tokenizer=str(tmp_path))


@pytest.mark.unit
def test_the_api_key_is_never_shown() -> None:
    config = CohereConfig(api_key="sk-secret-value")
    assert "sk-secret-value" not in repr(config) and "sk-secret-value" not in str(config.model_dump())


@pytest.mark.integration
def test_a_project_runs_and_searches_with_cohere(tmp_path: Path, server: ReplayedCohere,
                                                 monkeypatch: pytest.MonkeyPatch, cohere_allowed: None) -> None:
    import cohere

    real_client = cohere.ClientV2

    def client_on_replayed_http(**kwargs: Any) -> Any:  # the SDK's own client, sending through our transport
        assert kwargs["httpx_client"] is None
        return real_client(**{**kwargs, "httpx_client": server.client()})

    monkeypatch.setattr(cohere, "ClientV2", client_on_replayed_http)
    monkeypatch.setenv("COHERE_TEST_KEY", KEY)
    write_project(tmp_path, '{provider: cohere, api_key: "${COHERE_TEST_KEY}", max_tokens: 128}')
    project = Project.load(tmp_path)
    summary = project.run()
    assert summary.status == "succeeded"
    steps = {s.step: s for s in summary.steps}
    chunks = steps["embed"].counts["embedded"]
    assert chunks > 0 and all(b["input_type"] == "search_document" for b in server.bodies)
    assert sum(len(b["texts"]) for b in server.bodies) == chunks
    sent = len(server.requests)
    hits = project.search("error W42 sprockets aligned installer", mode="vector", k=3).hits
    assert server.bodies[sent]["input_type"] == "search_query"
    assert server.bodies[sent]["texts"] == ["error W42 sprockets aligned installer"]
    assert hits[0].document_id == "docs/guide/install.md" and "W42" in hits[0].text
    assert project.embedder.model_id.startswith("cohere:embed-english-v3.0@")
    # a second run embeds nothing: the vectors are cached under the same model_id
    again = {s.step: s for s in Project.load(tmp_path).run().steps}
    assert again["embed"].status == "skipped" and len(server.requests) == sent + 1


@pytest.mark.unit
def test_a_spec_with_an_unknown_setting_is_refused_by_name(tmp_path: Path, cohere_allowed: None) -> None:
    write_project(tmp_path, "{provider: cohere, modle: embed-v4.0}")
    with pytest.raises(FlightdeckError, match="unknown setting 'modle' for embedder 'cohere'.*Did you mean 'model'"):
        Project.load(tmp_path)
    assert isinstance(registry().create(Category.EMBEDDER, "cohere", {"api_key": KEY}), CohereEmbedder)


@pytest.mark.unit
def test_spec_model_names_stay_names_and_tokenizer_paths_are_relative_to_the_spec(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cohere_allowed: None) -> None:
    root = tmp_path / "project"
    root.mkdir()
    write_project(root, "{provider: cohere, model: embed-v4.0, tokenizer: ./tok, api_key: x}")
    (root / "tok").mkdir()
    (root / "tok" / "tokenizer.json").write_bytes((packaged_model_dir() / "tokenizer.json").read_bytes())
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    embedder = Project.load(root).embedder
    assert embedder.config.model == "embed-v4.0"
    assert embedder.model_dir == str(root / "tok")


@pytest.mark.unit
def test_without_the_sdk_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from flightdeck.errors import MissingDependencyError

    monkeypatch.setitem(__import__("sys").modules, "cohere", None)  # as if not installed
    with pytest.raises(MissingDependencyError, match=r"embedder 'cohere' needs: pip install 'flightdeck\[cohere\]'"
                       ) as info:
        CohereEmbedder(CohereConfig(api_key=KEY)).embed_query("x")
    assert isinstance(info.value.__cause__, ImportError)


@pytest.mark.integration
def test_the_environment_key_goes_only_to_coheres_own_api(server: ReplayedCohere,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CO_API_KEY", KEY)
    # Cohere's own API: the environment's key is used
    CohereEmbedder(CohereConfig(), httpx_client=server.client()).embed_query("x")
    assert _http(server)[-1].headers["authorization"] == f"Bearer {KEY}"
    # another endpoint named by the spec: the key is not sent, and the error says how to send it on purpose
    elsewhere = CohereEmbedder(CohereConfig(base_url="https://collector.example/"), httpx_client=server.client())
    with pytest.raises(CohereError, match=r"no Cohere API key for https://collector\.example/: the CO_API_KEY "
                                          r"environment variable is sent only to .*`api_key: \$\{CO_API_KEY\}`"):
        elsewhere.embed_query("x")
    plain_http = CohereEmbedder(CohereConfig(base_url="http://api.cohere.com"), httpx_client=server.client())
    with pytest.raises(CohereError, match="sent only to"):
        plain_http.embed_query("x")
    assert len(_http(server)) == 1  # nothing went to either
    # named in the spec, it goes where the spec says
    named = CohereEmbedder(CohereConfig(base_url="https://collector.example/", api_key=KEY),
                           httpx_client=server.client())
    named.embed_query("x")
    assert str(_http(server)[-1].url) == "https://collector.example/v2/embed"
    assert _http(server)[-1].headers["authorization"] == f"Bearer {KEY}"
