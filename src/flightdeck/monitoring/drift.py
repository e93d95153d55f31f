"""Drift analysis (checklist 4.3, used by phase 7 monitoring): do two samples of what a project sees differ?

The samples are the chunks of two dataset versions, the chunks two index versions hold, or the questions (and
retrieval scores) of two windows of traces (:mod:`flightdeck.monitoring.drift_samples` reads them). Each test
here is a two-sample test with a p-value; a test says *drifted* when its p-value is at most ``alpha``:

- embedding distribution shift (:func:`embedding_shift`), over the project's embedder's unit vectors:
  MMD² with an RBF kernel (median-heuristic bandwidth) and a permutation p-value; and a domain classifier
  (logistic regression telling A from B, cross-validated ROC AUC) with the p-value of
  ``sklearn.model_selection.permutation_test_score``;
- text shift (:func:`text_shift`): token lengths (``scipy.stats.ks_2samp``) and the term distribution
  (Jensen-Shannon distance of the two term-frequency vectors, permutation p-value over whole texts, so that
  words of one text are never treated as independent draws); vocabulary Jaccard overlap, the share of B's tokens
  unseen in A (OOV rate) and the top new terms are reported beside them;
- retrieval scores (:func:`score_shift`, trace windows only): KS tests of each answer's top-1 and mean hit score.

Every permutation test is seeded and uses at least enough permutations for its smallest p-value,
``1 / (permutations + 1)``, to reach ``alpha``. Each test has its own verdict at ``alpha`` (no correction
for testing several things at once: with four tests at 0.01 a sample drawn twice from one distribution is
called drifted about 4% of the time). Nothing here imports the facade, the pipeline or the CLI.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np

from flightdeck.errors import FlightdeckError
from flightdeck.registry.lookup import optional_import

__all__ = ["DriftTest", "Shift", "DriftReport", "Sample", "DriftInputError", "embedding_shift", "text_shift",
           "score_shift", "compare_samples", "subsample", "tokens", "DEFAULT_ALPHA", "DEFAULT_MAX_TEXTS"]

DEFAULT_ALPHA = 0.01
DEFAULT_MAX_TEXTS = 1000
PERMUTATIONS = 200  # MMD² and the term distribution: cheap, one matrix product per batch of permutations
CLASSIFIER_PERMUTATIONS = 50  # at least; raised to reach alpha (each is `folds` refits)
FOLDS = 5
PCA_COMPONENTS = 32  # the classifier sees the pooled sample's top principal components: 100+ refits stay fast
TOP_TERMS = 10

_WORD = re.compile(r"\w+")
_PURPOSE = "drift analysis"


class DriftInputError(FlightdeckError, ValueError):
    """The samples or the settings of a drift analysis cannot be compared (says what to give instead)."""


def tokens(text: str) -> list[str]:
    """The lowercased word tokens of ``text`` (Unicode ``\\w+``): what lengths and vocabularies count."""
    return _WORD.findall(text.lower())


def subsample(n: int, max_n: int, seed: int) -> np.ndarray:
    """Sorted indices of at most ``max_n`` of ``n`` items, seeded: the same ``n`` and seed give the same picks."""
    if n <= max_n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_n, replace=False))


def _permutations(alpha: float, base: int) -> int:
    """At least ``base`` permutations, and enough for the smallest p-value ``1/(P+1)`` to be below ``alpha``."""
    return max(base, math.ceil(1.0 / alpha))


def _p_value(observed: float, null: np.ndarray) -> float:
    """The permutation p-value ``(1 + #{null >= observed}) / (1 + P)`` (never 0)."""
    null = np.nan_to_num(np.asarray(null, dtype=float), nan=-np.inf)
    # a permuted statistic equal to the observed one up to rounding counts as "as extreme"
    return float((1 + np.count_nonzero(null >= observed - 1e-12)) / (1 + null.size))


def _check_alpha(alpha: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise DriftInputError(f"alpha must be between 0 and 1 (e.g. 0.01), got {alpha}")


# results ---------------------------------------------------------------------------------------------------
@dataclass
class DriftTest:
    """One two-sample test: its statistic, p-value and verdict at ``alpha`` (None: not run, ``skipped`` says why)."""

    name: str  # embedding_mmd, embedding_classifier, token_length, vocabulary, score_top1, score_mean
    title: str  # what a person reads: "embedding MMD²"
    statistic: float | None
    p_value: float | None
    drifted: bool | None
    method: str
    details: dict[str, Any] = field(default_factory=dict)
    skipped: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _verdict(p: float, alpha: float) -> bool:
    return bool(p <= alpha)


def _skipped(name: str, title: str, method: str, why: str) -> DriftTest:
    return DriftTest(name, title, None, None, None, method, skipped=why)


@dataclass
class Shift:
    """What one family of statistics found: its tests and the descriptive numbers beside them."""

    tests: list[DriftTest]
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def drifted(self) -> bool:
        return any(t.drifted for t in self.tests)

    def test(self, name: str) -> DriftTest:
        return next(t for t in self.tests if t.name == name)


# embeddings ------------------------------------------------------------------------------------------------
def _as_matrix(vectors: Any, side: str) -> np.ndarray:
    matrix = np.asarray(vectors, dtype=np.float64)
    if matrix.ndim != 2:
        raise DriftInputError(f"{side}: expected a 2-D array of vectors (one row per text), got shape {matrix.shape}")
    return matrix


def _mmd(pooled: np.ndarray, n_a: int, permutations: int, rng: np.random.Generator) -> tuple[float, float, float]:
    """Unbiased MMD² of rows ``[:n_a]`` vs ``[n_a:]`` with an RBF kernel of median-heuristic bandwidth, and its
    permutation p-value; returns (mmd², p, sigma)."""
    pairwise = optional_import("sklearn.metrics.pairwise", "eval", _PURPOSE)
    n = pooled.shape[0]
    n_b = n - n_a
    distances = pairwise.euclidean_distances(pooled)
    off = distances[np.triu_indices(n, 1)]
    positive = off[off > 0]
    sigma = float(np.median(off)) if np.median(off) > 0 else float(positive.mean()) if positive.size else 1.0
    kernel = pairwise.rbf_kernel(pooled, gamma=1.0 / (2.0 * sigma * sigma))
    np.fill_diagonal(kernel, 0.0)  # the unbiased estimate leaves out k(x, x)
    total = kernel.sum()

    def mmd2(in_a: np.ndarray) -> np.ndarray:  # in_a: n x P 0/1 membership of A, one column per labelling
        k_a = kernel @ in_a
        aa = (in_a * k_a).sum(axis=0)
        ab = ((1.0 - in_a) * k_a).sum(axis=0)
        bb = total - 2.0 * ab - aa
        return aa / (n_a * (n_a - 1)) + bb / (n_b * (n_b - 1)) - 2.0 * ab / (n_a * n_b)

    labels = np.zeros((n, 1))
    labels[:n_a] = 1.0
    observed = float(mmd2(labels)[0])
    null: list[np.ndarray] = []
    for start in range(0, permutations, 50):
        batch = min(50, permutations - start)
        cols = np.zeros((n, batch))
        for j in range(batch):
            cols[rng.permutation(n)[:n_a], j] = 1.0
        null.append(mmd2(cols))
    return observed, _p_value(observed, np.concatenate(null)), sigma


def _roc_auc(estimator: Any, features: np.ndarray, labels: np.ndarray) -> float:
    """ROC AUC of B (1) against A (0) as the Mann-Whitney U of the decision values over ``n_a * n_b``: the same
    number as ``roc_auc_score``, without the input checks that cost more than the fit in 500+ refits."""
    stats = optional_import("scipy.stats", "eval", _PURPOSE)
    values = estimator.decision_function(features)
    pos, neg = values[labels == 1], values[labels == 0]
    return float(stats.mannwhitneyu(pos, neg).statistic) / (len(pos) * len(neg))


def _classifier(pooled: np.ndarray, n_a: int, permutations: int, folds: int, seed: int) -> tuple[float, float, dict]:
    """Cross-validated ROC AUC of a logistic regression telling A (0) from B (1), and its permutation p-value."""
    model_selection = optional_import("sklearn.model_selection", "eval", _PURPOSE)
    linear_model = optional_import("sklearn.linear_model", "eval", _PURPOSE)
    decomposition = optional_import("sklearn.decomposition", "eval", _PURPOSE)
    features = pooled
    components = min(PCA_COMPONENTS, pooled.shape[0] - 1)
    if pooled.shape[1] > components:
        # Unsupervised and fitted once on the pooled sample (the labels are never seen), so the permuted labellings
        # stay exchangeable, and each refit is one small logistic regression. Not whitened: rescaling the
        # low-variance components to unit variance would hand the noise as much weight as the main directions.
        features = decomposition.PCA(components, random_state=seed).fit_transform(pooled)
    labels = np.r_[np.zeros(n_a, dtype=int), np.ones(pooled.shape[0] - n_a, dtype=int)]
    cv = model_selection.StratifiedKFold(folds, shuffle=True, random_state=seed)
    auc, null, p = model_selection.permutation_test_score(linear_model.LogisticRegression(solver="liblinear"),
                                                          features, labels, scoring=_roc_auc, cv=cv,
                                                          n_permutations=permutations, random_state=seed)
    return float(auc), float(p), {"features": int(features.shape[1]), "null_auc_mean": round(float(np.mean(null)), 4)}


def embedding_shift(a_vectors: Any, b_vectors: Any, seed: int = 0, *, alpha: float = DEFAULT_ALPHA,
                    permutations: int = PERMUTATIONS, classifier_permutations: int = CLASSIFIER_PERMUTATIONS,
                    folds: int = FOLDS, max_samples: int = DEFAULT_MAX_TEXTS) -> Shift:
    """Do the vectors of A and B (one row per text) come from one distribution?

    Two tests: MMD² (RBF kernel, bandwidth = the median pairwise distance of the pooled sample; unbiased
    estimate; permutation p-value) and a domain classifier (logistic regression on the pooled sample's top
    principal components; ``folds``-fold ROC AUC; p-value from
    ``sklearn.model_selection.permutation_test_score``). At most ``max_samples`` rows per side are used
    (seeded). The summary holds the sides' sizes and the cosine similarity of their mean vectors.
    """
    _check_alpha(alpha)
    a, b = _as_matrix(a_vectors, "A"), _as_matrix(b_vectors, "B")
    if a.shape[0] and b.shape[0] and a.shape[1] != b.shape[1]:
        raise DriftInputError(f"A's vectors have {a.shape[1]} dimensions and B's {b.shape[1]}: embed both sides "
                              "with the same model")
    a, b = a[subsample(len(a), max_samples, seed)], b[subsample(len(b), max_samples, seed)]
    summary: dict[str, Any] = {"a": int(len(a)), "b": int(len(b))}
    mmd_method = "unbiased MMD² (about 0, or below, when nothing moved), RBF kernel (median-heuristic bandwidth), " \
                 "permutation test"
    clf_method = "logistic regression A vs B, cross-validated ROC AUC, sklearn permutation_test_score"
    if min(len(a), len(b)) < 2:
        why = f"needs at least 2 vectors a side (A {len(a)}, B {len(b)})"
        return Shift([_skipped("embedding_mmd", "embedding MMD²", mmd_method, why),
                      _skipped("embedding_classifier", "embedding classifier AUC", clf_method, why)], summary)
    centroid_a, centroid_b = a.mean(axis=0), b.mean(axis=0)
    norms = float(np.linalg.norm(centroid_a) * np.linalg.norm(centroid_b))
    summary["centroid_cosine"] = round(float(centroid_a @ centroid_b) / norms, 4) if norms else None
    pooled = np.vstack([a, b])
    rng = np.random.default_rng(seed)
    n_perm = _permutations(alpha, permutations)
    mmd2, p, sigma = _mmd(pooled, len(a), n_perm, rng)
    tests = [DriftTest("embedding_mmd", "embedding MMD²", round(mmd2, 6), round(p, 6), _verdict(p, alpha),
                       f"{mmd_method}, {n_perm} permutations", {"sigma": round(sigma, 6), "permutations": n_perm})]
    k = min(folds, len(a), len(b))
    if k < 2:
        tests.append(_skipped("embedding_classifier", "embedding classifier AUC", clf_method,
                              f"needs at least 2 vectors a side for {folds}-fold cross-validation"))
    else:
        n_clf = _permutations(alpha, classifier_permutations)
        auc, p_clf, extra = _classifier(pooled, len(a), n_clf, k, seed)
        tests.append(DriftTest("embedding_classifier", "embedding classifier AUC", round(auc, 4), round(p_clf, 6),
                               _verdict(p_clf, alpha), f"{clf_method}, {k} folds, {n_clf} permutations",
                               {"folds": k, "permutations": n_clf, **extra}))
    return Shift(tests, summary)


# texts -----------------------------------------------------------------------------------------------------
def _lengths(counts: Sequence[int]) -> dict[str, Any]:
    if not counts:
        return {"texts": 0, "mean": None, "p50": None, "p95": None}
    arr = np.asarray(counts, dtype=float)
    return {"texts": len(counts), "mean": round(float(arr.mean()), 2), "p50": round(float(np.percentile(arr, 50)), 2),
            "p95": round(float(np.percentile(arr, 95)), 2)}


def _top(counter: Counter[str], keep: Callable[[str], bool], n: int) -> list[dict[str, Any]]:
    ranked = sorted(((t, c) for t, c in counter.items() if keep(t)), key=lambda tc: (-tc[1], tc[0]))
    return [{"term": t, "count": c} for t, c in ranked[:n]]


def _listable(term: str) -> bool:
    """Whether a new or dropped term is worth listing: not a number, a single character or an English stop word."""
    stop_words = optional_import("sklearn.feature_extraction.text", "eval", _PURPOSE).ENGLISH_STOP_WORDS
    return len(term) > 1 and not term.isdigit() and term not in stop_words


def _vocabulary_test(a_texts: list[str], b_texts: list[str], permutations: int,
                     rng: np.random.Generator) -> tuple[float, float, int] | None:
    """Jensen-Shannon distance (base 2) of the term frequencies of A and B and its permutation p-value, whole
    texts permuted between the sides; None when a side holds no token."""
    text_features = optional_import("sklearn.feature_extraction.text", "eval", _PURPOSE)
    distance = optional_import("scipy.spatial.distance", "eval", _PURPOSE)
    vectorizer = text_features.CountVectorizer(tokenizer=tokens, lowercase=False, token_pattern=None)
    try:
        counts = vectorizer.fit_transform(a_texts + b_texts).tocsr().astype(np.float64)
    except ValueError:  # empty vocabulary
        return None
    n, n_a = counts.shape[0], len(a_texts)
    totals = np.asarray(counts.sum(axis=0)).ravel()
    side_a = np.asarray(counts[:n_a].sum(axis=0)).ravel()
    if side_a.sum() == 0 or side_a.sum() == totals.sum():
        return None
    observed = float(distance.jensenshannon(side_a, totals - side_a, base=2))
    null: list[np.ndarray] = []
    transposed = counts.T.tocsr()
    for start in range(0, permutations, 50):
        batch = min(50, permutations - start)
        members = np.zeros((n, batch))
        for j in range(batch):
            members[rng.permutation(n)[:n_a], j] = 1.0
        perm_a = np.asarray(transposed @ members)
        with np.errstate(invalid="ignore", divide="ignore"):
            null.append(distance.jensenshannon(perm_a, totals[:, None] - perm_a, axis=0, base=2))
    return observed, _p_value(observed, np.concatenate(null)), counts.shape[1]


def text_shift(a_texts: Sequence[str], b_texts: Sequence[str], seed: int = 0, *, alpha: float = DEFAULT_ALPHA,
               permutations: int = PERMUTATIONS, max_samples: int = DEFAULT_MAX_TEXTS,
               top_terms: int = TOP_TERMS) -> Shift:
    """Do the texts of B differ from those of A in length or vocabulary?

    Tests (on at most ``max_samples`` texts a side, seeded): token lengths with ``scipy.stats.ks_2samp``, and the
    term distribution (Jensen-Shannon distance, permutation p-value). The summary, over all texts: token-length
    mean/p50/p95 per side, the vocabulary sizes, their Jaccard overlap, the OOV rate (the share of B's tokens
    whose term A never has), and B's most frequent new terms (and A's terms that B lost; numbers, single
    characters and English stop words are counted but not listed).
    """
    _check_alpha(alpha)
    a_all, b_all = [tokens(t) for t in a_texts], [tokens(t) for t in b_texts]
    vocab_a, vocab_b = Counter(w for ts in a_all for w in ts), Counter(w for ts in b_all for w in ts)
    union = vocab_a.keys() | vocab_b.keys()
    b_tokens = sum(vocab_b.values())
    new = Counter({t: c for t, c in vocab_b.items() if t not in vocab_a})
    lost = Counter({t: c for t, c in vocab_a.items() if t not in vocab_b})
    summary: dict[str, Any] = {
        "tokens": {"a": _lengths([len(ts) for ts in a_all]), "b": _lengths([len(ts) for ts in b_all])},
        "vocabulary": {
            "a_terms": len(vocab_a), "b_terms": len(vocab_b),
            "jaccard": round(len(vocab_a.keys() & vocab_b.keys()) / len(union), 4) if union else None,
            "oov_rate": round(sum(new.values()) / b_tokens, 4) if b_tokens else None,
            "new_terms": _top(new, _listable, top_terms), "dropped_terms": _top(lost, _listable, top_terms)}}
    ia, ib = subsample(len(a_all), max_samples, seed), subsample(len(b_all), max_samples, seed)
    len_a, len_b = [len(a_all[i]) for i in ia], [len(b_all[i]) for i in ib]
    ks_method = "two-sample Kolmogorov-Smirnov test of tokens per text (scipy.stats.ks_2samp)"
    js_method = "Jensen-Shannon distance of term frequencies, texts permuted between the sides"
    tests: list[DriftTest] = []
    if min(len(len_a), len(len_b)) < 2:
        why = f"needs at least 2 texts a side (A {len(len_a)}, B {len(len_b)})"
        return Shift([_skipped("token_length", "token length KS", ks_method, why),
                      _skipped("vocabulary", "vocabulary JS distance", js_method, why)], summary)
    stats = optional_import("scipy.stats", "eval", _PURPOSE)
    ks = stats.ks_2samp(len_a, len_b)
    tests.append(DriftTest("token_length", "token length KS", round(float(ks.statistic), 6),
                           round(float(ks.pvalue), 6), _verdict(float(ks.pvalue), alpha), ks_method,
                           {"a_mean": round(float(np.mean(len_a)), 2), "b_mean": round(float(np.mean(len_b)), 2)}))
    n_perm = _permutations(alpha, permutations)
    found = _vocabulary_test([a_texts[i] for i in ia], [b_texts[i] for i in ib], n_perm,
                             np.random.default_rng(seed))
    if found is None:
        tests.append(_skipped("vocabulary", "vocabulary JS distance", js_method, "a side has no word tokens"))
    else:
        js, p, terms = found
        tests.append(DriftTest("vocabulary", "vocabulary JS distance", round(js, 6), round(p, 6), _verdict(p, alpha),
                               f"{js_method}, {n_perm} permutations", {"terms": terms, "permutations": n_perm}))
    return Shift(tests, summary)


# retrieval scores ------------------------------------------------------------------------------------------
def _describe(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0, "mean": None, "p50": None}
    return {"n": len(values), "mean": round(float(np.mean(values)), 6), "p50": round(float(np.median(values)), 6)}


def score_shift(a: Sequence[Sequence[float]], b: Sequence[Sequence[float]], *, alpha: float = DEFAULT_ALPHA) -> Shift:
    """Did the retrieval scores change? ``a`` and ``b`` hold each answer's hit scores (best first or not).

    KS tests (``scipy.stats.ks_2samp``) of each answer's top-1 score and of its mean hit score; answers without
    hits are left out of both and counted in the summary (``no_hits``).
    """
    _check_alpha(alpha)
    top_a, top_b = [float(max(s)) for s in a if len(s)], [float(max(s)) for s in b if len(s)]
    mean_a, mean_b = [float(np.mean(s)) for s in a if len(s)], [float(np.mean(s)) for s in b if len(s)]
    summary = {"answers": {"a": len(a), "b": len(b)},
               "no_hits": {"a": len(a) - len(top_a), "b": len(b) - len(top_b)},
               "top1": {"a": _describe(top_a), "b": _describe(top_b)},
               "mean": {"a": _describe(mean_a), "b": _describe(mean_b)}}
    method = "two-sample Kolmogorov-Smirnov test (scipy.stats.ks_2samp)"
    tests = []
    for name, title, xa, xb in (("score_top1", "top-1 score KS", top_a, top_b),
                                ("score_mean", "mean hit score KS", mean_a, mean_b)):
        if min(len(xa), len(xb)) < 2:
            tests.append(_skipped(name, title, method, f"needs at least 2 answers with hits a side "
                                                       f"(A {len(xa)}, B {len(xb)})"))
            continue
        ks = optional_import("scipy.stats", "eval", _PURPOSE).ks_2samp(xa, xb)
        tests.append(DriftTest(name, title, round(float(ks.statistic), 6), round(float(ks.pvalue), 6),
                               _verdict(float(ks.pvalue), alpha), f"{method} of each answer's "
                               f"{'top-1' if name == 'score_top1' else 'mean'} score",
                               {"a_mean": round(float(np.mean(xa)), 6), "b_mean": round(float(np.mean(xb)), 6)}))
    return Shift(tests, summary)


# the report ------------------------------------------------------------------------------------------------
@dataclass
class Sample:
    """One side of a comparison, as the readers of :mod:`flightdeck.monitoring.drift_samples` return it.

    ``texts`` are what is compared (chunk texts, or questions); ``vectors`` optionally the vectors the workspace
    already holds for them (an index version's, made by ``vector_model``), row for row; ``scores`` each answer's
    retrieval scores (trace windows only); ``info`` what a person needs to know which sample this is.
    """

    kind: str  # dataset | index | traces
    id: str
    label: str
    texts: list[str]
    info: dict[str, Any] = field(default_factory=dict)
    vectors: Any = None
    vector_model: str | None = None
    scores: list[list[float]] | None = None

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "id": self.id, "label": self.label, "texts": len(self.texts), **self.info}


@dataclass
class DriftReport:
    """The comparison of sample A (before) with B (after): every test, the descriptive numbers, the verdict."""

    kind: str  # datasets | indexes | traces
    a: dict[str, Any]
    b: dict[str, Any]
    alpha: float
    embedder: str  # the model whose vectors were compared
    tests: list[DriftTest]
    summary: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seed: int = 0

    @property
    def drifted(self) -> bool:
        """True when any test's p-value is at most ``alpha``."""
        return any(t.drifted for t in self.tests)

    def test(self, name: str) -> DriftTest:
        """The test named ``name`` (``embedding_mmd``, ``embedding_classifier``, ``token_length``, ``vocabulary``,
        ``score_top1``, ``score_mean``)."""
        for t in self.tests:
            if t.name == name:
                return t
        raise KeyError(f"no test {name!r} in this report; it has: {', '.join(t.name for t in self.tests)}")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "drifted": self.drifted, "alpha": self.alpha, "seed": self.seed,
                "drifted_tests": [t.name for t in self.tests if t.drifted], "a": self.a, "b": self.b,
                "embedder": self.embedder, "tests": [t.to_dict() for t in self.tests], "summary": self.summary,
                "notes": self.notes}


class _Embedder(Protocol):
    @property
    def model_id(self) -> str: ...

    def embed_documents(self, texts: list[str]) -> Any: ...


def compare_samples(a: Sample, b: Sample, embedder: _Embedder, *, kind: str, alpha: float = DEFAULT_ALPHA,
                    max_texts: int = DEFAULT_MAX_TEXTS, seed: int = 0) -> DriftReport:
    """Run every test that applies to samples ``a`` and ``b`` and gather the report.

    At most ``max_texts`` texts a side are embedded and tested (seeded picks: the same sample twice gives the
    same picks). When both samples carry vectors of one model (two index versions built by one embedder), those
    are compared; otherwise ``embedder`` embeds the picked texts.
    """
    _check_alpha(alpha)
    if max_texts < 2:
        raise DriftInputError(f"max_texts must be at least 2, got {max_texts}")
    for side in (a, b):
        if not side.texts:
            raise DriftInputError(f"{side.label} holds no texts to compare")
    notes: list[str] = []
    ia, ib = subsample(len(a.texts), max_texts, seed), subsample(len(b.texts), max_texts, seed)
    for side, picked in ((a, ia), (b, ib)):
        if len(picked) < len(side.texts):
            notes.append(f"{side.label}: {len(picked)} of {len(side.texts)} texts sampled (seed {seed}, "
                         f"--max-texts {max_texts})")
    if a.vectors is not None and b.vectors is not None and a.vector_model and a.vector_model == b.vector_model:
        va, vb = np.asarray(a.vectors)[ia], np.asarray(b.vectors)[ib]
        model = a.vector_model
        notes.append(f"compared the vectors both indexes hold ({model})")
    else:
        if a.vector_model and b.vector_model and a.vector_model != b.vector_model:
            notes.append(f"the sides were embedded by different models ({a.vector_model}, {b.vector_model}); "
                         f"both were embedded again with the project's embedder")
        va = np.asarray(embedder.embed_documents([a.texts[i] for i in ia]))
        vb = np.asarray(embedder.embed_documents([b.texts[i] for i in ib]))
        model = embedder.model_id
    embedding = embedding_shift(va, vb, seed, alpha=alpha, max_samples=max_texts)
    text = text_shift(a.texts, b.texts, seed, alpha=alpha, max_samples=max_texts)
    tests = [*embedding.tests, *text.tests]
    summary: dict[str, Any] = {"embedding": embedding.summary, **text.summary}
    if a.scores is not None and b.scores is not None:
        scores = score_shift(a.scores, b.scores, alpha=alpha)
        tests += scores.tests
        summary["scores"] = scores.summary
    return DriftReport(kind, a.describe(), b.describe(), alpha, model, tests, summary, notes, seed)
