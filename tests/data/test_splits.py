"""Dataset splits: train/validation/test, k-fold and time-series, alone and recorded by the pipeline."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from pathlib import Path

import pytest
from pydantic import ValidationError

from flightdeck import Project
from flightdeck.errors import FlightdeckError
from flightdeck.registry import Category, registry
from flightdeck.spec.loader import check_spec
from flightdeck.testing import FakeEmbedder

pytestmark = pytest.mark.unit

LABELS = {"common": 0.7, "medium": 0.25, "rare": 0.05}


def _docs(n: int, start: int = 0) -> dict[str, dict]:
    out = {}
    for i in range(start, start + n):
        u = (i * 7919 % 1000) / 1000  # spread labels deterministically but not by id order
        label = "common" if u < 0.7 else "medium" if u < 0.95 else "rare"
        out[f"src/doc-{i:05d}.md"] = {"label": label, "date": f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}T00:00:00"}
    return out


def _splitter(name: str, **settings):
    return registry().create(Category.SPLITTER, name, settings)


# train / validation / test ----------------------------------------------------------------------------
def test_ratios_hold_within_tolerance() -> None:
    result = _splitter("train_validation_test").assign(_docs(3000))
    counts = Counter(result.assignments.values())
    assert set(counts) == {"train", "validation", "test"}
    for name, ratio in zip(("train", "validation", "test"), (0.8, 0.1, 0.1), strict=True):
        assert abs(counts[name] / 3000 - ratio) < 0.03, counts
    assert result.strategy == "train_validation_test" and not result.unassigned


def test_assignment_is_deterministic_and_seeded() -> None:
    docs = _docs(500)
    a = _splitter("train_validation_test", seed=7).assign(docs).assignments
    b = _splitter("train_validation_test", seed=7).assign(dict(reversed(list(docs.items())))).assignments
    c = _splitter("train_validation_test", seed=8).assign(docs).assignments
    assert a == b  # same seed, same ids: same splits, whatever the order
    assert a != c  # the seed matters


def test_adding_documents_never_moves_existing_ones() -> None:
    splitter = _splitter("train_validation_test")
    before = splitter.assign(_docs(400)).assignments
    after = splitter.assign({**_docs(400), **_docs(300, start=400)}).assignments
    assert {d: after[d] for d in before} == before


def test_two_ratios_give_train_and_test() -> None:
    counts = Counter(_splitter("train_validation_test", ratios=[0.7, 0.3]).assign(_docs(1000)).assignments.values())
    assert set(counts) == {"train", "test"} and abs(counts["test"] / 1000 - 0.3) < 0.04


@pytest.mark.exercises("data.splits.train_validation_test")
def test_stratified_proportions_per_label() -> None:
    docs = _docs(1000)
    result = _splitter("train_validation_test", stratify_by="label", ratios=[0.6, 0.2, 0.2]).assign(docs)
    per_label: dict[str, Counter] = {}
    for d, split in result.assignments.items():
        per_label.setdefault(docs[d]["label"], Counter())[split] += 1
    assert set(per_label) == set(LABELS)
    for label, counts in per_label.items():
        n = sum(counts.values())
        for name, ratio in (("train", 0.6), ("validation", 0.2), ("test", 0.2)):
            assert abs(counts[name] - ratio * n) <= 1, (label, counts)  # exact to one document
    # adding documents moves at most one document per label and cut
    bigger = {**docs, **_docs(5, start=1000)}
    again = _splitter("train_validation_test", stratify_by="label", ratios=[0.6, 0.2, 0.2]).assign(bigger)
    moved = [d for d in docs if again.assignments[d] != result.assignments[d]]
    assert len(moved) <= 5 * 2


def test_documents_without_the_label_form_their_own_group() -> None:
    docs = {f"d{i}": ({"label": "x"} if i % 2 else {}) for i in range(100)}
    result = _splitter("train_validation_test", stratify_by="label", ratios=[0.5, 0.5]).assign(docs)
    assert Counter(s for d, s in result.assignments.items() if not docs[d]) == {"train": 25, "test": 25}


@pytest.mark.parametrize("ratios", [[0.8, 0.1], [0.5, 0.3, 0.1, 0.1], [1.2, -0.1, -0.1], [0.0, 0.5, 0.5]])
def test_bad_ratios_are_refused(ratios: list[float]) -> None:
    with pytest.raises(ValidationError, match="ratios|train ratio"):
        _splitter("train_validation_test", ratios=ratios)


# k-fold ---------------------------------------------------------------------------------------------------
@pytest.mark.exercises("data.splits.k_fold")
@pytest.mark.parametrize("stratify_by", [None, "label"])
def test_k_folds_are_disjoint_covering_and_balanced(stratify_by: str | None) -> None:
    docs = _docs(1000)
    result = _splitter("k_fold", k=5, stratify_by=stratify_by).assign(docs)
    assert set(result.assignments) == set(docs)  # covering; a dict gives each document exactly one fold
    counts = Counter(result.assignments.values())
    assert sorted(counts) == [f"fold-{i}" for i in range(5)]
    tolerance = 3 if stratify_by else 45
    assert all(abs(n - 200) <= tolerance for n in counts.values()), counts
    if stratify_by:
        for label in LABELS:
            per_fold = Counter(s for d, s in result.assignments.items() if docs[d]["label"] == label)
            assert max(per_fold.values()) - min(per_fold.values()) <= 1
    # deterministic, and stable under additions when not stratified
    again = _splitter("k_fold", k=5, stratify_by=stratify_by).assign({**docs, **_docs(50, start=1000)})
    moved = sum(again.assignments[d] != result.assignments[d] for d in docs)
    assert moved == 0 if stratify_by is None else moved <= 50 * 4


# time series ----------------------------------------------------------------------------------------------
def _timed(n: int) -> dict[str, dict]:
    # ids deliberately not in time order; several documents share a day
    return {f"doc-{(i * 37) % n:04d}": {"published": f"2023-{1 + i // 31 % 12:02d}-{1 + i % 28:02d}"} for i in range(n)}


@pytest.mark.exercises("data.splits.time_series_split")
def test_time_series_has_no_leakage_from_the_future() -> None:
    docs = _timed(300)
    result = _splitter("time_series_split", timestamp_field="published").assign(docs)
    by_split: dict[str, list[str]] = {}
    for d, s in result.assignments.items():
        by_split.setdefault(s, []).append(docs[d]["published"])
    assert set(by_split) == {"train", "validation", "test"}
    assert max(by_split["train"]) < min(by_split["validation"])
    assert max(by_split["validation"]) < min(by_split["test"])
    n = len(docs)
    assert abs(len(by_split["train"]) - 0.8 * n) < 0.05 * n and abs(len(by_split["test"]) - 0.1 * n) < 0.05 * n


def test_time_series_by_cut_points_and_mixed_timestamp_forms() -> None:
    docs = {"a": {"t": "2024-01-01T00:00:00Z"}, "b": {"t": 1706745600}, "c": {"t": "2024-03-01"},
            "d": {"t": "2024-02-15T12:00:00+01:00"}, "e": {"t": "not a date"}, "f": {}}
    result = _splitter("time_series_split", timestamp_field="t",
                       cut_points=["2024-02-01", "2024-02-20"]).assign(docs)
    assert result.assignments == {"a": "train", "b": "validation", "d": "validation", "c": "test"}
    assert set(result.unassigned) == {"e", "f"} and "not a timestamp" in result.unassigned["e"]


def test_numeric_timestamps_are_years_or_epochs_by_an_explicit_rule() -> None:
    from datetime import UTC, datetime

    from flightdeck.data.splits import parse_timestamp

    y2023 = datetime(2023, 1, 1, tzinfo=UTC).timestamp()
    assert parse_timestamp("2023") == parse_timestamp(2023) == parse_timestamp(" 2023 ") == y2023  # not 1970
    assert parse_timestamp("2023-05") == datetime(2023, 5, 1, tzinfo=UTC).timestamp()
    assert parse_timestamp("20230101") == y2023  # ISO 8601's basic date
    assert parse_timestamp(1706745600) == parse_timestamp("1706745600") == 1706745600.0  # epoch seconds
    assert parse_timestamp(1706745600000) == parse_timestamp("1706745600000.0") == 1706745600.0  # milliseconds
    for refused in (12345, "12345", -5, "2023.5", 2023.5, 99, "2023-13"):
        assert parse_timestamp(refused) is None, refused


def test_a_number_that_is_no_year_or_epoch_is_refused_naming_the_field_and_value() -> None:
    docs = {"a": {"year": "2021-06-01"}, "b": {"year": 2022}, "c": {"year": "2023"}, "e": {"year": "2020-01-01"},
            "d": {"year": "12345"}}
    result = _splitter("time_series_split", timestamp_field="year", ratios=[0.5, 0.5]).assign(docs)
    # 2020 < 2021 < 2022 < 2023: the bare years are years, not seconds after 1970 (which would come first)
    assert result.assignments == {"e": "train", "a": "train", "b": "test", "c": "test"}
    assert result.unassigned["d"].startswith("year='12345' is not a timestamp: a number is a year (1000-9999), "
                                             "seconds since 1970")
    cut = _splitter("time_series_split", timestamp_field="year", cut_points=[2022])
    assert cut.assign(docs).assignments == {"e": "train", "a": "train", "b": "test", "c": "test"}
    with pytest.raises(ValidationError, match=r"cut_points='500' is not a timestamp: a number is a year"):
        _splitter("time_series_split", timestamp_field="year", cut_points=["500"])


def test_time_series_needs_a_timestamp_field(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="timestamp_field"):
        _splitter("time_series_split")
    with pytest.raises(ValidationError, match="either ratios or cut_points"):
        _splitter("time_series_split", timestamp_field="t", ratios=[0.5, 0.5], cut_points=["2024-01-01"])
    spec = tmp_path / "flightdeck.yaml"
    spec.write_text("project: p\ndata:\n  sources: [{provider: files, path: ./docs}]\n  splits: time_series_split\n")
    _, problems = check_spec(spec)
    assert any(p.location == "data.splits.timestamp_field" and p.line == 4 for p in problems), \
        [str(p) for p in problems]


# recorded by the pipeline ---------------------------------------------------------------------------------
SPEC = """\
project: split-test
data:
  sources: [{{provider: files, path: ./records.jsonl, name: rec}}]
  chunking: {{provider: recursive, size: 64, overlap: 8}}
  cleaning: {{language: false}}
  splits: {splits}
retrieval: {{search: {{k: 5}}}}
"""


def _write_records(root: Path, n: int) -> None:
    rows = [{"_id": f"r{i:03d}", "title": f"Note {i}", "label": "odd" if i % 3 else "third",
             "day": f"2024-{1 + i % 12:02d}-{1 + i % 27:02d}",
             "text": f"Record {i} describes item {i} of the catalogue, with colour {i * 13 % 7} and size {i % 5}."}
            for i in range(n)]
    (root / "records.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")


def _run(root: Path, splits: str) -> tuple[Project, dict]:
    (root / "flightdeck.yaml").write_text(SPEC.format(splits=splits))
    project = Project.load(root)
    project.use(embedder=FakeEmbedder())
    summary = project.run()
    return project, {s.step: s for s in summary.steps}


def _recorded(root: Path) -> tuple[str, dict[str, str], set[str]]:
    with sqlite3.connect(root / ".flightdeck" / "metadata.db") as db:
        version = db.execute("select value from state where key = 'current_dataset'").fetchone()[0]
        rows = dict(db.execute("select document_id, split from dataset_splits where dataset_version = ?", (version,)))
        strategies = {r[0] for r in db.execute("select strategy from dataset_splits where dataset_version = ?",
                                               (version,))}
        docs = {r[0] for r in db.execute("select id from documents")}
    assert set(rows) == docs
    return version, rows, strategies


def test_pipeline_records_splits_per_dataset_version(tmp_path: Path) -> None:
    _write_records(tmp_path, 60)
    project, steps = _run(tmp_path, "{provider: train_validation_test, ratios: [0.5, 0.25, 0.25], "
                                    "stratify_by: label}")
    version, rows, strategies = _recorded(tmp_path)
    assert strategies == {"train_validation_test"} and len(rows) == 60
    assert steps["ingest"].counts["splits"] == {"strategy": "train_validation_test", "test": 15, "train": 30,
                                                "validation": 15}
    assert project.split("test") == sorted(d for d, s in rows.items() if s == "test")
    with pytest.raises(FlightdeckError, match="no split 'fold-0'.*test, train, validation"):
        project.split("fold-0")
    # nothing changed: nothing runs, the splits stay
    _, steps = _run(tmp_path, "{provider: train_validation_test, ratios: [0.5, 0.25, 0.25], stratify_by: label}")
    assert steps["ingest"].status == "skipped" and _recorded(tmp_path)[1] == rows
    # another split setting re-runs ingest without reading a document again, and replaces the assignment
    _, steps = _run(tmp_path, "{provider: k_fold, k: 3}")
    assert steps["ingest"].status == "succeeded" and steps["ingest"].counts["parsed"] == 0
    version2, folds, strategies = _recorded(tmp_path)
    assert version2 == version and strategies == {"k_fold"} and set(folds.values()) == {"fold-0", "fold-1", "fold-2"}


def test_pipeline_time_series_split_and_unassigned_documents(tmp_path: Path) -> None:
    _write_records(tmp_path, 40)
    with (tmp_path / "records.jsonl").open("a") as fh:
        fh.write(json.dumps({"_id": "undated", "title": "Undated", "text": "A record without any day at all."}) + "\n")
    project, steps = _run(tmp_path, "{provider: time_series_split, timestamp_field: day, ratios: [0.75, 0.25]}")
    counts = steps["ingest"].counts["splits"]
    assert counts["strategy"] == "time_series_split" and counts["unassigned"][0]["uri"].endswith("undated")
    train, test = project.split("train"), project.split("test")
    days = {d: m["day"] for d, m in _metadata(tmp_path).items() if "day" in m}
    assert len(train) + len(test) == 40 and max(days[d] for d in train) < min(days[d] for d in test)


def test_no_splits_configured(tmp_path: Path) -> None:
    _write_records(tmp_path, 5)
    (tmp_path / "flightdeck.yaml").write_text(SPEC.format(splits="null"))
    project = Project.load(tmp_path)
    project.use(embedder=FakeEmbedder())
    project.run()
    with pytest.raises(FlightdeckError, match="no recorded splits; set data.splits"):
        project.split("train")


def _metadata(root: Path) -> dict[str, dict]:
    with sqlite3.connect(root / ".flightdeck" / "metadata.db") as db:
        return {r[0]: json.loads(r[1]) for r in db.execute("select id, metadata from documents")}
