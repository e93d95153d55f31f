"""The huggingface embedder with the real packaged all-MiniLM-L6-v2 through transformers' AutoModel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from flightdeck import Project
from flightdeck.errors import FlightdeckError
from flightdeck.registry import Category, registry
from flightdeck.retrieval.embedders.base import Embedder
from flightdeck.retrieval.embedders.huggingface import HuggingFaceConfig, HuggingFaceEmbedder
from flightdeck.retrieval.embedders.sentence_transformers import SentenceTransformersEmbedder, packaged_model_dir

pytestmark = pytest.mark.integration

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


def write_project(root: Path, embedder: str) -> None:
    """A spec with ``embedder`` and a three-document corpus under ``root``."""
    for rel, body in DOCS.items():
        path = root / "docs" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body, encoding="utf-8")
    (root / "flightdeck.yaml").write_text(SPEC.format(embedder=embedder), encoding="utf-8")

TEXTS = [
    "Store widgets in a dry place between 5 and 25 degrees Celsius.",
    "If the installer stops with error W42, the sprockets are not aligned.",
    "hello",
    "Green widgets are the most popular in spring, " * 6,
]


@pytest.fixture(scope="module")
def mean() -> HuggingFaceEmbedder:
    return HuggingFaceEmbedder(HuggingFaceConfig(pooling="mean"))


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    return (a * b).sum(-1)


def test_mean_pooling_agrees_with_sentence_transformers(mean: HuggingFaceEmbedder) -> None:
    ours = mean.embed_documents(TEXTS)
    reference = SentenceTransformersEmbedder().embed_documents(TEXTS)
    assert ours.shape == reference.shape == (len(TEXTS), 384) and ours.dtype == np.float32
    assert np.all(_cos(ours, reference) > 0.999)
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    query = "how warm may the room be"
    assert _cos(mean.embed_query(query), SentenceTransformersEmbedder().embed_query(query)) > 0.999


def test_defaults_come_from_the_model_folder(mean: HuggingFaceEmbedder) -> None:
    default = HuggingFaceEmbedder()
    assert isinstance(default, Embedder)
    assert default.pooling == "mean"  # 1_Pooling/config.json says pooling_mode_mean_tokens
    assert default.max_tokens == 256  # sentence_bert_config.json; config.json alone would allow 512
    assert default.dimension == 384 and default.model_dir == str(packaged_model_dir())
    assert default.model_id == mean.model_id and default.model_id.startswith("huggingface:all-MiniLM-L6-v2@")


def test_cls_pooling_gives_other_vectors_and_another_model_id(mean: HuggingFaceEmbedder) -> None:
    cls = HuggingFaceEmbedder(HuggingFaceConfig(pooling="cls"))
    sims = _cos(cls.embed_documents(TEXTS), mean.embed_documents(TEXTS))
    assert np.all(sims < 0.95), sims
    assert cls.model_id != mean.model_id and "/cls/" in cls.model_id


@pytest.mark.parametrize("pooling", ["mean", "cls", "last_token"])
def test_a_batch_gives_the_vectors_of_one_text_at_a_time(pooling: str) -> None:
    emb = HuggingFaceEmbedder(HuggingFaceConfig(pooling=pooling, batch_size=4))  # type: ignore[arg-type]
    together = emb.embed_documents(TEXTS)  # padded to the longest text
    alone = np.stack([emb.embed_documents([t])[0] for t in TEXTS])
    assert np.allclose(together, alone, atol=1e-5)


def test_prefixes_and_instructions_change_the_vectors(mean: HuggingFaceEmbedder) -> None:
    q = "where are widgets stored"
    prefixed = HuggingFaceEmbedder(HuggingFaceConfig(query_prefix="query: "))
    assert _cos(prefixed.embed_query(q), mean.embed_query(q)) < 0.999
    assert np.allclose(prefixed.embed_query(q), mean.embed_query("query: " + q), atol=1e-6)
    assert np.allclose(prefixed.embed_documents(TEXTS[:1]), mean.embed_documents(TEXTS[:1]))  # docs untouched
    documents = HuggingFaceEmbedder(HuggingFaceConfig(document_prefix="passage: "))
    assert np.allclose(documents.embed_documents(TEXTS[:1])[0], mean.embed_query("passage: " + TEXTS[0]),
                       atol=1e-6)
    instructed = HuggingFaceEmbedder(HuggingFaceConfig(instruction="Find the care guide"))
    assert np.allclose(instructed.embed_query(q), mean.embed_query(f"Instruct: Find the care guide\nQuery: {q}"),
                       atol=1e-6)
    ids = {mean.model_id, prefixed.model_id, documents.model_id, instructed.model_id}
    assert len(ids) == 4
    with pytest.raises(ValidationError, match="either instruction or query_prefix"):
        HuggingFaceConfig(instruction="x", query_prefix="query: ")


def test_every_setting_that_changes_vectors_changes_the_model_id(mean: HuggingFaceEmbedder) -> None:
    variants = [HuggingFaceConfig(normalize=False), HuggingFaceConfig(max_length=128),
                HuggingFaceConfig(dtype="bfloat16"), HuggingFaceConfig(pooling="last_token")]
    ids = {HuggingFaceEmbedder(c).model_id for c in variants}
    assert len(ids) == len(variants) and mean.model_id not in ids
    # settings that leave the vectors alone leave the id alone (the cache stays valid)
    assert HuggingFaceEmbedder(HuggingFaceConfig(batch_size=3, device="cpu")).model_id == mean.model_id


def test_normalize_false_keeps_the_raw_pooled_vectors(mean: HuggingFaceEmbedder) -> None:
    raw = HuggingFaceEmbedder(HuggingFaceConfig(normalize=False)).embed_documents(TEXTS)
    norms = np.linalg.norm(raw, axis=1)
    assert not np.allclose(norms, 1.0, atol=1e-3)
    assert np.allclose(raw / norms[:, None], mean.embed_documents(TEXTS), atol=1e-5)


def test_long_texts_are_cut_at_max_length_without_error(mean: HuggingFaceEmbedder) -> None:
    long = " ".join(f"word{i} widget sprocket" for i in range(3000))  # far over 512 tokens
    vectors = mean.embed_documents([long, long + " an entirely different ending about football"])
    assert vectors.shape == (2, 384) and np.all(np.isfinite(vectors))
    assert np.allclose(vectors[0], vectors[1], atol=1e-6)  # the tail past 256 tokens was cut off
    short = HuggingFaceEmbedder(HuggingFaceConfig(max_length=8))
    assert short.max_tokens == 8
    a, b = short.embed_documents(["one two three four five six seven eight nine",
                                  "one two three four five six something else entirely"])
    assert np.allclose(a, b, atol=1e-6)  # 6 words + [CLS] + [SEP] = 8 tokens
    assert not np.allclose(mean.embed_documents(["one two three four five six seven eight nine"])[0], a,
                           atol=1e-3)


def test_max_length_above_what_the_model_reads_is_refused() -> None:
    with pytest.raises(FlightdeckError, match="max_length 4096 exceeds the 512 tokens"):
        HuggingFaceEmbedder(HuggingFaceConfig(max_length=4096))


def test_a_missing_model_folder_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(ValidationError, match="does not exist; flightdeck loads Hugging Face models from local"):
        HuggingFaceConfig(model=str(missing))
    monkeypatch.chdir(tmp_path)  # a relative path is checked when the embedder is built
    with pytest.raises(FlightdeckError, match=r"no-such-model' does not exist.*hf download"):
        HuggingFaceEmbedder(HuggingFaceConfig(model="no-such-model"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FlightdeckError, match="no config.json here"):
        HuggingFaceEmbedder(HuggingFaceConfig(model=str(tmp_path / "empty")))


def test_a_folder_without_weights_fails_on_load_with_what_is_missing(tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    folder.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        (folder / name).write_bytes((packaged_model_dir() / name).read_bytes())
    emb = HuggingFaceEmbedder(HuggingFaceConfig(model=str(folder)))
    assert emb.model_id.startswith("huggingface:broken@")
    with pytest.raises(FlightdeckError, match="could not load the Hugging Face model in .*broken"):
        emb.embed_query("x")


@pytest.mark.exercises("retrieval.embedding_model.huggingface")
def test_a_project_runs_and_searches_with_the_huggingface_embedder(tmp_path: Path) -> None:
    write_project(tmp_path, "{provider: huggingface, model: ./models/minilm, pooling: mean, batch_size: 8}")
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "minilm").symlink_to(packaged_model_dir(), target_is_directory=True)
    project = Project.load(tmp_path)
    summary = project.run()
    assert summary.status == "succeeded"
    steps = {s.step: s for s in summary.steps}
    assert steps["embed"].counts["embedded"] > 0
    assert isinstance(project.embedder, HuggingFaceEmbedder)
    assert project.embedder.model_dir == str(packaged_model_dir())  # ./models/minilm, resolved from the spec
    # the query shares no word with the answer's sentence but "widgets": the vectors have to do the work
    hits = project.search("how warm or cold may the room be where widgets are kept", mode="vector", k=3).hits
    assert hits[0].document_id == "docs/guide/care.md" and "dry place" in hits[0].text
    again = {s.step: s for s in Project.load(tmp_path).run().steps}
    assert again["embed"].status == "skipped"  # same model_id: nothing re-embedded


def test_the_registry_builds_it_from_settings() -> None:
    emb = registry().create(Category.EMBEDDER, "huggingface", {"pooling": "cls", "max_length": 64})
    assert isinstance(emb, HuggingFaceEmbedder) and emb.max_tokens == 64 and emb.pooling == "cls"


def test_without_transformers_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from flightdeck.errors import MissingDependencyError

    monkeypatch.setitem(__import__("sys").modules, "transformers", None)  # as if not installed
    with pytest.raises(MissingDependencyError,
                       match=r"embedder 'huggingface' needs: pip install 'flightdeck\[huggingface\]'") as info:
        HuggingFaceEmbedder().embed_query("x")
    assert isinstance(info.value.__cause__, ImportError)
