"""Evaluate a question-answering system on an evaluation set: retrieval, answers, groundedness and refusals.

Each question is asked once, as a user would ask it (``ask_stream``: one search, the generator, the prompt), and
that one search serves both the answer and the retrieval metrics: they are taken on the hits the answer was built
from, the first ``EvalOptions.search_k`` of them (the configured ``retrieval.search.k``: the answer's search may
fetch more for the prompt, ``generator.top_chunks``; a system configured to return one hit is scored on that hit),
at depth ``k``. Answerable questions with references score retrieval, text overlap, similarity and citations;
every question scores refusal behaviour: an unanswerable question should get the generator's "not found", an
answerable one should not. A question that fails (the model server went away, say) is recorded with its error and
scored as a refusal; it never stops the run (its retrieval is still scored when the search had come back).

The system is anything with ``ask_stream(question)`` whose stream yields the search result (an object with
``hits``) before the answer, and ``search(query, k=...)`` for a stream that yields none (the project facade, or a
fake in tests): this module depends on no facade, pipeline or CLI.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from flightdeck.core.reporting import Reporter
from flightdeck.evaluation.metrics import FAMILIES
from flightdeck.evaluation.metrics.classification import answerability_scores
from flightdeck.evaluation.metrics.grounding import VectorCache, sentence_support, similarity
from flightdeck.evaluation.metrics.retrieval import retrieval_scores
from flightdeck.evaluation.metrics.text import bleu, corpus_bleu, exact_match, rouge, token_f1
from flightdeck.evaluation.sets import EvalQuestion, EvalSet

__all__ = ["AnsweringSystem", "EvalOptions", "QuestionResult", "EvalResult", "evaluate", "match_reference"]

SNIPPET_CHARS = 400


class AnsweringSystem(Protocol):
    """What an evaluation needs of the system under test."""

    def search(self, query: str, k: int | None = None) -> Any: ...

    def ask_stream(self, question: str) -> Iterator[Any]: ...


@dataclass(frozen=True)
class EvalOptions:
    """How deep and how wide a run measures."""

    k: int = 10
    families: tuple[str, ...] = tuple(FAMILIES)
    support_threshold: float = 0.5
    limit: int | None = None  # score only the first N questions (a quick look)
    tools: tuple[str, ...] = ()  # evaluation.tools run in-process: openai_evals (Match, Includes, FuzzyMatch), ragas
    judge: Any = None  # an LlmJudge (llm_as_a_judge): faithfulness, relevancy, correctness with reasoning
    tool_generator: Any = None  # the LLM generator that evaluation tools judge with (ragas)
    tool_embedder: Any = None  # the embedder that evaluation tools embed with (ragas' answer relevancy)
    # how many hits the system's search returns as configured (retrieval.search.k): retrieval is scored on the first
    # search_k hits of the search the answer was built from; None: on all of them
    search_k: int | None = None


@dataclass
class QuestionResult:
    """Everything measured for one question; the report's per-question row."""

    id: str
    question: str
    tags: list[str]
    answerable: bool
    reference_answer: str
    reference_sources: list[str]
    answer: str = ""
    found: bool = False
    citations: list[dict[str, Any]] = field(default_factory=list)
    retrieved: list[dict[str, Any]] = field(default_factory=list)
    sentences: list[dict[str, Any]] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)
    latency_ms: float = 0.0
    flags: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""
    outcome: str = ""  # answered | refused | wrongly_refused | wrongly_answered | error
    judgements: list[dict[str, Any]] = field(default_factory=list)  # the LLM judge's verdicts with reasoning
    index_version: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class EvalResult:
    """A finished evaluation: aggregate metrics, each question's result, and what was measured."""

    set_name: str
    set_id: str
    counts: dict[str, Any]
    index_version: str
    options: dict[str, Any]
    metrics: dict[str, float | None]
    questions: list[QuestionResult]
    started_at: float
    finished_at: float

    def to_dict(self) -> dict[str, Any]:
        return {"set": {"name": self.set_name, "id": self.set_id, "counts": self.counts},
                "index_version": self.index_version, "options": self.options, "metrics": self.metrics,
                "started_at": self.started_at, "finished_at": self.finished_at,
                "questions": [q.to_dict() for q in self.questions]}

    @property
    def latencies_ms(self) -> list[float]:
        return [q.latency_ms for q in self.questions if not q.error]


def match_reference(hit: Any, references: tuple[str, ...]) -> str | None:
    """The reference source a hit belongs to: its document id or source URI is the reference, or ends with it
    after a ``/`` (``library/bisect.html`` matches ``corpus/library/bisect.html``); None when none does."""
    for ref in references:
        ref_norm = ref.strip().lstrip("./")
        for candidate in (hit.document_id, hit.document_id.split("#", 1)[0], hit.source_uri):
            if candidate == ref_norm or candidate.endswith("/" + ref_norm) or candidate.endswith("#" + ref_norm):
                return ref
    return None


def _relevant_key(hit: Any, q: EvalQuestion) -> str:
    if q.reference_chunks:
        return hit.chunk_id
    return match_reference(hit, q.reference_sources) or hit.document_id


def _percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))], 3)


def _mean(values: list[float]) -> float | None:
    return round(statistics.fmean(values), 5) if values else None


def _ask(system: AnsweringSystem, question: str) -> tuple[Any, Any, Exception | None]:
    """The search result the stream yielded (None: it yielded none), the answer, and what failed (None: nothing).
    The search result is kept when the generation fails after it: the retrieval was measured all the same."""
    search_result, answer = None, None
    try:
        for item in system.ask_stream(question):
            if search_result is None and hasattr(item, "hits"):
                search_result = item
            elif hasattr(item, "found") and hasattr(item, "citations"):
                answer = item
        if answer is None:
            raise RuntimeError("the system gave no answer")
    except Exception as exc:  # the caller records it on the question: it never stops the run
        return search_result, None, exc
    return search_result, answer, None


def _score_retrieval(r: QuestionResult, q: EvalQuestion, hits: list[Any], ranking: dict[str, list[str]],
                     qrels: dict[str, dict[str, int]]) -> None:
    ranking[q.id] = [_relevant_key(h, q) for h in hits]
    qrels[q.id] = {ref: 1 for ref in (q.reference_chunks or q.reference_sources)}
    relevant = set(qrels[q.id])
    r.retrieved = [{"rank": i, "document_id": h.document_id, "chunk_id": h.chunk_id, "title": h.title,
                    "heading": h.heading, "score": round(float(h.score), 5),
                    "relevant": _relevant_key(h, q) in relevant, "text": h.text[:SNIPPET_CHARS]}
                   for i, h in enumerate(hits, 1)]


def _score_question(system: AnsweringSystem, q: EvalQuestion, options: EvalOptions, vectors: VectorCache,
                    ranking: dict[str, list[str]], qrels: dict[str, dict[str, int]]) -> QuestionResult:
    r = QuestionResult(q.id, q.question, list(q.tags), q.answerable, q.reference_answer, list(q.reference_sources))
    families = set(options.families)
    t0 = time.perf_counter()
    context, answer, failure = _ask(system, q.question)
    elapsed_ms = (time.perf_counter() - t0) * 1000
    if q.answerable and q.has_references:
        # one search per question: the hits the answer was built from are the ones scored
        searched = context
        if searched is None and failure is None:  # a stream that yields no search result: search as deployed
            try:
                searched = system.search(q.question)
            except Exception as exc:  # recorded below, as a failed answer is
                failure = exc
        if searched is not None:
            _score_retrieval(r, q, list(searched.hits)[: options.search_k], ranking, qrels)
    if failure is not None:  # one failing question never stops the run; its error is in the report
        r.error = f"{type(failure).__name__}: {failure}"
        r.outcome = "error"
        return r
    r.latency_ms = round((getattr(answer, "timings_ms", None) or {}).get("total", elapsed_ms), 3)
    r.answer, r.found, r.flags = answer.answer, bool(answer.found), list(answer.flags)
    r.index_version = answer.index_version
    r.citations = [{"number": c.number, "document_id": c.document_id, "chunk_id": c.chunk_id, "title": c.title,
                    "heading": c.heading, "source_uri": c.source_uri} for c in answer.citations]
    r.outcome = ("answered" if r.found else "wrongly_refused") if q.answerable else (
        "wrongly_answered" if r.found else "refused")
    if not r.found:
        return r
    hits = {h.chunk_id: h for h in (context.hits if context is not None else [])}
    cited = [(c.chunk_id, hits[c.chunk_id].text) for c in answer.citations if c.chunk_id in hits]
    evidence = cited or [(h.chunk_id, h.text) for h in hits.values()]
    support = sentence_support(answer.answer, evidence, vectors, options.support_threshold)
    r.sentences = [s.to_dict() for s in support]
    if support:
        r.scores["groundedness"] = round(statistics.fmean(s.support for s in support), 5)
        r.scores["supported_sentence_rate"] = round(sum(s.supported for s in support) / len(support), 5)
    if options.judge is not None:
        contexts = [text for _, text in evidence][:3]
        verdicts = options.judge.judge(q.question, answer.answer, contexts,
                                       q.reference_answer if q.answerable else "")
        r.judgements = [v.to_dict() for v in verdicts]
        r.scores.update({v.metric: v.score for v in verdicts if v.score is not None})
    if q.answerable and q.reference_sources:
        matched = [match_reference(c, q.reference_sources) for c in answer.citations]
        if matched:
            r.scores["citation_precision"] = round(sum(m is not None for m in matched) / len(matched), 5)
        r.scores["citation_recall"] = round(len({m for m in matched if m}) / len(q.reference_sources), 5)
    if q.answerable and q.reference_answer:
        r.scores["exact_match"] = exact_match(answer.answer, q.reference_answer)
        if "f1" in families:
            r.scores["token_f1"] = round(token_f1(answer.answer, q.reference_answer), 5)
        if "bleu_rouge" in families:
            r.scores["bleu"] = round(bleu(answer.answer, q.reference_answer), 5)
            r.scores.update({k: round(v, 5) for k, v in rouge(answer.answer, q.reference_answer).items()})
        if "cosine_similarity" in families:
            r.scores["answer_similarity"] = similarity(answer.answer, q.reference_answer, vectors)
    return r


def _aggregate(results: list[QuestionResult], ranking: dict[str, list[str]], qrels: dict[str, dict[str, int]],
               options: EvalOptions) -> dict[str, float | None]:
    metrics: dict[str, float | None] = {}
    if qrels:
        means, per = retrieval_scores(qrels, ranking, options.k)
        metrics.update(means)
        for r in results:
            r.scores.update(per.get(r.id, {}))
    else:
        metrics.update(dict.fromkeys((f"ndcg@{options.k}", f"recall@{options.k}"), None))
    answered_ok = [r for r in results if r.answerable and r.found and r.reference_answer]
    per_question = ["exact_match", "token_f1", "bleu", "rouge1", "rouge2", "rougeL", "answer_similarity",
                    "citation_precision", "citation_recall", "groundedness", "supported_sentence_rate",
                    "faithfulness", "answer_relevancy", "context_relevance", "correctness"]
    for name in per_question:
        values = [r.scores[name] for r in results if name in r.scores]
        if values or _expected(name, options):
            metrics[name] = _mean(values)
    if options.judge is not None:
        metrics["judge_unparsed"] = float(sum(j["score"] is None for r in results for j in r.judgements))
    if "bleu_rouge" in options.families:
        # corpus BLEU over every answered question: the figure BLEU means in papers (sentence BLEU is noisy)
        metrics["bleu"] = round(corpus_bleu([r.answer for r in answered_ok], [r.reference_answer for r in answered_ok]),
                                5) if answered_ok else None
    if "openai_evals" in options.tools:
        from flightdeck.evaluation.tools.openai_evals import basic_scores, fuzzy_match, includes, match

        graded = [r for r in results if r.answerable and r.reference_answer and not r.error]
        for r in graded:
            r.scores.update({"openai_match": float(match(r.answer, [r.reference_answer])),
                             "openai_includes": float(includes(r.answer, [r.reference_answer])),
                             "openai_fuzzy_match": float(fuzzy_match(r.answer, [r.reference_answer]))})
        scores = basic_scores([(r.answer, [r.reference_answer]) for r in graded])
        metrics.update({k: round(v, 5) for k, v in scores.items()} if scores else
                       dict.fromkeys(("openai_match", "openai_includes", "openai_fuzzy_match"), None))
    if "ragas" in options.tools:
        from flightdeck.evaluation.tools.ragas import ragas_scores

        # Ragas' metrics with flightdeck's own LLM and embedder; a (question, metric) pair that fails counts in
        # ragas_failed and never stops the run
        metrics.update(ragas_scores(results, options.tool_generator, options.tool_embedder))
    if "trulens" in options.tools:
        from flightdeck.evaluation.tools.trulens import trulens_scores

        # TruLens' feedback functions with flightdeck's own LLM; a reply TruLens cannot parse counts in trulens_failed
        metrics.update(trulens_scores(results, options.tool_generator))
    unanswerable = [r for r in results if not r.answerable]
    answerable = [r for r in results if r.answerable]
    metrics["refusal_rate"] = _mean([float(not r.found) for r in unanswerable])
    metrics["false_refusal_rate"] = _mean([float(not r.found) for r in answerable])
    metrics["answered_rate"] = _mean([float(r.found) for r in results])
    metrics.update(answerability_scores([r.answerable for r in results], [r.found for r in results],
                                        [r.scores.get("groundedness", 0.0) if r.found else 0.0 for r in results],
                                        set(options.families)))
    latencies = [r.latency_ms for r in results if not r.error]
    metrics["latency_p50_ms"] = _percentile(latencies, 50)
    metrics["latency_p95_ms"] = _percentile(latencies, 95)
    metrics["errors"] = float(sum(bool(r.error) for r in results))
    return metrics


def _expected(name: str, options: EvalOptions) -> bool:
    families = {m: f for f, ms in FAMILIES.items() for m in ms}
    if families.get(name) == "llm_as_a_judge":
        return options.judge is not None
    return name not in families or families[name] in options.families


def evaluate(system: AnsweringSystem, eval_set: EvalSet, embed: Callable[[list[str]], Any],
             options: EvalOptions | None = None, reporter: Reporter | None = None) -> EvalResult:
    """Score ``system`` on every question of ``eval_set`` (or the first ``options.limit``).

    ``embed`` turns texts into unit vectors (the project's embedder): groundedness and answer similarity use it.
    """
    options = options or EvalOptions()
    questions = list(eval_set.questions[: options.limit] if options.limit else eval_set.questions)
    vectors = VectorCache(embed)
    ranking: dict[str, list[str]] = {}
    qrels: dict[str, dict[str, int]] = {}
    started = time.time()
    results: list[QuestionResult] = []
    for n, q in enumerate(questions, 1):
        results.append(_score_question(system, q, options, vectors, ranking, qrels))
        if reporter is not None:
            reporter.progress("evaluate", n, len(questions))
    index_version = next((r.index_version for r in results if r.index_version), "")
    metrics = _aggregate(results, ranking, qrels, options)
    opts = {"judge": getattr(options.judge, "model_id", None), "k": options.k, "search_k": options.search_k,
            "families": list(options.families), "support_threshold": options.support_threshold,
            "limit": options.limit, "questions": len(questions), "tools": list(options.tools)}
    return EvalResult(eval_set.name, eval_set.sha256, eval_set.counts, index_version, opts, metrics, results,
                      started, time.time())
