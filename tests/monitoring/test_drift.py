"""Drift analysis (checklist 4.3): the two-sample tests on data with known answers, then `project.drift` and
`flightdeck drift` on a small project whose documents change topic, on its index versions and on trace windows."""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from flightdeck import Project
from flightdeck.cli.main import app
from flightdeck.errors import WorkspaceError
from flightdeck.monitoring.drift import DriftInputError, embedding_shift, score_shift, text_shift
from flightdeck.monitoring.drift_samples import parse_window
from flightdeck.monitoring.traces import Trace, TraceStore, new_trace_id
from flightdeck.testing import FakeEmbedder
from flightdeck.workspace.index_versions import index_versions_of
from needs import needs

pytestmark = [pytest.mark.unit, needs("eval", "sklearn", "scipy")]
runner = CliRunner()

COOKING = [
    "Simmer the tomato sauce with garlic and basil for twenty minutes.",
    "Knead the bread dough until smooth, then let it rise in a warm kitchen.",
    "Whisk the eggs with sugar before folding in the flour and butter.",
    "Roast the vegetables with olive oil, rosemary and a pinch of salt.",
    "Season the soup with salt, pepper and a squeeze of lemon juice.",
    "Fry the onions slowly in butter until they are golden and sweet.",
    "Bake the chocolate cake in a hot oven for forty minutes.",
    "Marinate the chicken in yogurt, garlic and spices overnight.",
    "Boil the pasta in salted water and toss it with the sauce.",
    "Grate the cheese over the warm risotto just before serving.",
    "Chop the parsley and stir it into the butter with the garlic.",
    "Poach the pears in red wine with cinnamon and sugar.",
]
NETWORKING = [
    "The router forwards each packet to the next hop found in its routing table.",
    "A switch learns the MAC addresses of the frames arriving on its ports.",
    "TCP retransmits a segment when no acknowledgement arrives before the timeout.",
    "DNS resolves a host name to an IP address through recursive resolvers.",
    "The firewall drops inbound packets that reach closed ports.",
    "A VLAN splits one physical switch into separate broadcast domains.",
    "BGP exchanges routes between autonomous systems on the internet.",
    "DHCP leases an IP address, a subnet mask and a gateway to each client.",
    "The subnet mask tells which part of the IP address names the network.",
    "A load balancer spreads TCP connections across the backend servers.",
    "Packet loss on the uplink makes TCP shrink its congestion window.",
    "The gateway translates private addresses with NAT before packets leave.",
]


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


# --- the statistics, on data with known answers -----------------------------------------------------------------
def test_one_distribution_sampled_twice_is_not_drift() -> None:
    rng = np.random.default_rng(7)
    shift = embedding_shift(_unit(rng.normal(size=(60, 24))), _unit(rng.normal(size=(60, 24))), seed=0, alpha=0.05)
    mmd, clf = shift.test("embedding_mmd"), shift.test("embedding_classifier")
    assert mmd.p_value > 0.05 and clf.p_value > 0.05, (mmd, clf)
    assert not shift.drifted
    assert 0.3 < clf.statistic < 0.7  # chance-level AUC


def test_shifted_gaussian_clusters_are_drift_by_both_tests() -> None:
    rng = np.random.default_rng(7)
    a, b = rng.normal(size=(60, 24)), rng.normal(size=(60, 24))
    b[:, :3] += 1.0  # B's cluster moved along three axes
    shift = embedding_shift(_unit(a), _unit(b), seed=0)
    mmd, clf = shift.test("embedding_mmd"), shift.test("embedding_classifier")
    assert mmd.p_value < 0.01 and mmd.statistic > 0 and mmd.drifted
    assert clf.statistic > 0.8 and clf.p_value < 0.01 and clf.drifted  # AUC far above chance
    assert clf.details["permutations"] >= 100  # enough for p to reach alpha = 0.01
    assert shift.summary["a"] == shift.summary["b"] == 60


def test_embedding_shift_subsamples_and_refuses_mismatched_dimensions() -> None:
    rng = np.random.default_rng(1)
    shift = embedding_shift(rng.normal(size=(300, 8)), rng.normal(size=(50, 8)), seed=3, max_samples=40,
                            classifier_permutations=10, alpha=0.2)
    assert shift.summary["a"] == 40 and shift.summary["b"] == 40
    with pytest.raises(DriftInputError, match="8 dimensions and B's 4"):
        embedding_shift(rng.normal(size=(5, 8)), rng.normal(size=(5, 4)))
    tiny = embedding_shift(rng.normal(size=(1, 8)), rng.normal(size=(5, 8)))
    assert all(t.skipped and t.drifted is None for t in tiny.tests) and not tiny.drifted


def test_cooking_against_networking_is_text_drift_with_the_new_terms() -> None:
    shift = text_shift(COOKING, NETWORKING)
    vocab = shift.test("vocabulary")
    assert vocab.drifted and vocab.p_value < 0.01 and vocab.statistic > 0.8
    v = shift.summary["vocabulary"]
    assert v["jaccard"] < 0.15 and v["oov_rate"] > 0.7
    new = [t["term"] for t in v["new_terms"]]
    assert {"tcp", "ip", "packets"} <= set(new) and not {"the", "a", "to"} & set(new)  # stop words not listed
    assert "garlic" in [t["term"] for t in v["dropped_terms"]]
    assert not shift.test("token_length").drifted  # the sentences are as long on both sides
    assert shift.summary["tokens"]["a"]["texts"] == 12 and shift.summary["tokens"]["a"]["p95"] is not None


def test_identical_corpora_are_not_text_drift_but_longer_texts_are() -> None:
    same = text_shift(COOKING, list(COOKING))
    assert not same.drifted and same.test("vocabulary").p_value == 1.0 and same.test("token_length").p_value == 1.0
    assert same.summary["vocabulary"]["jaccard"] == 1.0 and same.summary["vocabulary"]["oov_rate"] == 0.0
    longer = text_shift(COOKING * 3, [s + " " + s.lower() + " " + s for s in COOKING * 3])
    lengths = longer.test("token_length")
    assert lengths.drifted and lengths.p_value < 1e-6
    assert longer.summary["tokens"]["b"]["mean"] == pytest.approx(3 * longer.summary["tokens"]["a"]["mean"], abs=0.05)


def test_retrieval_scores_ks() -> None:
    rng = np.random.default_rng(0)
    before = [list(rng.uniform(0.6, 0.9, size=3)) for _ in range(30)]
    after = [list(rng.uniform(0.2, 0.5, size=3)) for _ in range(30)] + [[]]  # one answer found nothing
    shift = score_shift(before, after)
    assert shift.test("score_top1").drifted and shift.test("score_mean").p_value < 1e-6
    assert shift.summary["no_hits"] == {"a": 0, "b": 1}
    assert shift.summary["top1"]["a"]["mean"] > 0.8 > 0.5 > shift.summary["top1"]["b"]["mean"]
    same = score_shift(before, [list(s) for s in before])
    assert not same.drifted and same.test("score_top1").p_value == 1.0


def test_windows_parse() -> None:
    assert parse_window("7d") == 7 * 86400 and parse_window("24h") == 86400 and parse_window("90m") == 5400
    assert parse_window(3600) == 3600.0 and parse_window("2w") == 14 * 86400
    for bad in ("7x", "", "-1d", "0h"):
        with pytest.raises(DriftInputError, match="window"):
            parse_window(bad)


# --- a project: dataset versions, index versions, traces ------------------------------------------------------
def _write_docs(root: Path, sentences: list[str], topic: str) -> None:
    docs = root / "docs"
    for old in docs.glob("*.md"):
        old.unlink()
    docs.mkdir(parents=True, exist_ok=True)
    for i, sentence in enumerate(sentences):
        (docs / f"{topic}-{i:02d}.md").write_text(f"# {topic.title()} note {i}\n\n{sentence}\n", "utf-8")


def _project(root: Path) -> Path:
    _write_docs(root, COOKING, "cooking")
    (root / "flightdeck.yaml").write_text(textwrap.dedent("""\
        project: drift-test
        data:
          sources: [{provider: files, path: ./docs}]
          chunking: {provider: recursive, size: 64, overlap: 8}
        retrieval:
          system: [hybrid_search]
          search: {mode: hybrid, k: 3}
        evaluation:
          validations: [drift_analysis]
        """), "utf-8")
    return root


def _load(root: Path) -> Project:
    return Project.load(root).use(embedder=FakeEmbedder(dimension=256))


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """A project run on cooking notes, then on networking notes: two dataset versions (and index versions)."""
    root = _project(tmp_path_factory.mktemp("drift"))
    project = _load(root)
    project.run()
    _write_docs(root, NETWORKING, "networking")
    project = _load(root)
    project.run()
    versions = project.dataset_versions()
    assert len(versions) == 2
    return root, versions[0].id, versions[1].id


@pytest.fixture
def fake_embedder_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    load = Project.load.__func__  # type: ignore[attr-defined]
    monkeypatch.setattr(Project, "load", classmethod(lambda cls, path=None: load(cls, path).use(
        embedder=FakeEmbedder(dimension=256))))


@pytest.mark.exercises("evaluation.validations.drift_analysis")
def test_two_dataset_versions_on_different_topics_have_drifted(two_versions: tuple[Path, str, str]) -> None:
    root, v1, v2 = two_versions
    project = _load(root)
    report = project.drift(datasets=(v1[:10], "current"))
    assert report.kind == "datasets" and report.a["id"] == v1 and report.b["id"] == v2
    assert report.a["chunks"] == report.b["chunks"] == 12 and report.embedder == "fake:fake-bow-256"
    assert report.drifted
    assert {"embedding_mmd", "embedding_classifier", "vocabulary"} <= set(report.to_dict()["drifted_tests"])
    assert report.test("embedding_mmd").p_value < 0.01 and report.test("embedding_classifier").statistic > 0.9
    new_terms = [t["term"] for t in report.summary["vocabulary"]["new_terms"]]
    assert "tcp" in new_terms or "ip" in new_terms
    assert json.loads(json.dumps(report.to_dict()))["drifted"] is True  # plain JSON

    same = project.drift(datasets=(v1, v1), alpha=0.05)
    assert not same.drifted, [(t.name, t.p_value) for t in same.tests]
    assert same.test("embedding_mmd").p_value > 0.5 and same.summary["vocabulary"]["jaccard"] == 1.0


def test_index_versions_compare_the_vectors_they_hold(two_versions: tuple[Path, str, str]) -> None:
    root, v1, v2 = two_versions
    project = _load(root)
    built = index_versions_of(project.workspace, [v1, v2])
    assert [b.dataset_version for b in built] == [v1, v2]
    report = project.drift(indexes=(built[0].id[:12], built[1].id[:12]), alpha=0.05)
    assert report.kind == "indexes" and report.b["dataset_version"] == v2
    assert report.a["vectors"] == report.b["vectors"] == "cached"
    assert any("vectors both indexes hold" in n for n in report.notes)
    assert report.drifted and report.test("embedding_mmd").drifted


def test_unknown_versions_name_the_ones_that_exist(two_versions: tuple[Path, str, str]) -> None:
    root, v1, v2 = two_versions
    project = _load(root)
    with pytest.raises(WorkspaceError) as err:
        project.drift(datasets=("deadbeef", v2))
    assert "no dataset version matches 'deadbeef'" in str(err.value)
    assert v1[:12] in str(err.value) and f"{v2[:12]} (" in str(err.value) and "current" in str(err.value)
    with pytest.raises(WorkspaceError, match="nothex!.*The index versions, newest first"):
        project.drift(indexes=("nothex!", "current"))
    with pytest.raises(DriftInputError, match="compare one thing"):
        project.drift(datasets=(v1, v2), traces=True)
    with pytest.raises(DriftInputError, match="compare one thing"):
        project.drift()


def _trace(store: TraceStore, question: str, created_at: float, scores: list[float]) -> None:
    store.record(Trace(new_trace_id(), "query", question, created_at=created_at, answer="…", found=bool(scores),
                       details={"retrieved": [{"chunk_id": f"c{i}", "score": s} for i, s in enumerate(scores)]}))


def test_two_windows_of_traces_compare_questions_and_retrieval_scores(tmp_path: Path) -> None:
    project = _load(_project(tmp_path))
    store = TraceStore(project.workspace)
    now = time.time()
    day = 86400.0
    for i, q in enumerate(COOKING):  # the week before: cooking questions, confident retrieval
        _trace(store, f"How do I {q.lower()}", now - 8 * day - i * 3600, [0.9 - 0.01 * i, 0.7, 0.5])
    for i, q in enumerate(NETWORKING):  # the last week: networking questions, weak retrieval
        _trace(store, f"Why does {q.lower()}", now - 1 * day - i * 3600, [0.35 + 0.01 * i, 0.3])
    _trace(store, "Too old to count", now - 20 * day, [0.99])
    report = project.drift(traces=True, window="7d", now=now, alpha=0.05)
    assert report.kind == "traces" and report.a["traces"] == 12 and report.b["traces"] == 12
    top1, mean = report.test("score_top1"), report.test("score_mean")
    assert top1.statistic == 1.0 and top1.p_value < 1e-5 and top1.drifted and mean.drifted
    assert top1.details["a_mean"] > 0.8 and top1.details["b_mean"] < 0.5
    assert report.summary["scores"]["answers"] == {"a": 12, "b": 12}
    assert report.drifted and report.test("vocabulary").drifted

    with pytest.raises(WorkspaceError, match="no traces in .*holds 25 traces"):
        project.drift(traces=True, window="1h", now=now)


# --- the command ----------------------------------------------------------------------------------------------
def test_cli_drift_json_human_and_fail_on_drift(two_versions: tuple[Path, str, str], fake_embedder_cli: None) -> None:
    root, v1, v2 = two_versions
    result = runner.invoke(app, ["drift", "--datasets", v1[:12], v2[:12], "--spec", str(root), "--json",
                                 "--alpha", "0.05", "--max-texts", "50"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["drifted"] is True and out["alpha"] == 0.05 and out["a"]["id"] == v1
    assert {t["name"] for t in out["tests"]} == {"embedding_mmd", "embedding_classifier", "token_length",
                                                   "vocabulary"}

    result = runner.invoke(app, ["drift", "--datasets", v1[:12], v2[:12], "--spec", str(root), "--fail-on-drift",
                                 "--alpha", "0.05"])
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    assert len(lines) <= 24  # one screen
    assert any(line.strip().startswith("embedding MMD²") and "DRIFTED" in line for line in lines)
    assert "new terms:" in result.stdout and lines[-1].startswith("DRIFTED:")


def test_cli_bad_input(two_versions: tuple[Path, str, str], fake_embedder_cli: None) -> None:
    root, v1, v2 = two_versions
    unknown = runner.invoke(app, ["drift", "--datasets", "abc999", v2[:12], "--spec", str(root)])
    assert unknown.exit_code == 1
    assert "no dataset version matches 'abc999'" in unknown.stderr and v1[:12] in unknown.stderr
    as_json = runner.invoke(app, ["drift", "--indexes", "abc999", "current", "--spec", str(root), "--json"])
    assert as_json.exit_code == 1 and json.loads(as_json.stdout)["ok"] is False
    for args in (["--datasets", v1, v2, "--traces"], [], ["--datasets", v1, v2, "--window", "7d"],
                 ["--traces", "--window", "7x"], ["--datasets", v1], ["--traces", "--alpha", "1.5"]):
        result = runner.invoke(app, ["drift", *args, "--spec", str(root)])
        assert result.exit_code == 2, (args, result.output)
    both = runner.invoke(app, ["drift", "--datasets", v1, v2, "--traces", "--spec", str(root)])
    assert "exactly one of" in both.output and "--datasets and --traces" in both.output
