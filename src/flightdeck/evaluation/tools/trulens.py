"""TruLens (trulens.org) feedback functions on flightdeck's evaluation results, judged by flightdeck's own generator:
offline, no API key, no dashboard and no database.

:func:`trulens_scores` takes each answered :class:`~flightdeck.evaluation.runner.QuestionResult` (the question, the
answer without its citation markers, the texts of the first retrieved hits in rank order) and calls the feedback
functions of TruLens' own LLM provider (``trulens.feedback.llm_provider.LLMProvider``, trulens-feedback 2.16), the
RAG triad of TruLens' documentation:

=================================  ================================================  ==========================
flightdeck name                    TruLens feedback function                          needs
=================================  ================================================  ==========================
``trulens_groundedness``           ``groundedness_measure_with_cot_reasons``          answer, contexts
``trulens_answer_relevance``       ``relevance``                                      question, answer
``trulens_context_relevance``      ``context_relevance`` (mean over the contexts)     question, contexts
=================================  ================================================  ==========================

The provider is :class:`FlightdeckTruLensProvider`, an ``LLMProvider`` subclass whose ``_create_chat_completion`` (the
one method TruLens' providers implement) calls a flightdeck LLM generator (``complete(messages, max_tokens=,
temperature=, stop=)``); TruLens never builds an OpenAI client. The functions are called directly, as TruLens'
``Provider`` documents (``provider.relevance(prompt, response)``): no ``TruSession``, so no SQLite file, no dashboard
and no OpenTelemetry exporter. TruLens 2.16 sends no usage events (it has no telemetry to switch off; its network
paths are its providers' APIs, the exporters of a ``TruSession`` and ``nltk.download``, none of which runs here).

Two of TruLens' groundedness steps are not used, with ``GroundednessConfigs(use_sent_tokenize=False,
filter_trivial_statements=False)``:

* TruLens splits the answer into sentences with nltk's punkt tokenizer after ``nltk.download("punkt_tab")`` on every
  call, which reaches the network. With ``use_sent_tokenize=False`` TruLens asks its LLM to split the sentences
  instead; the provider answers that one prompt (TruLens' ``Groundedness.sentences_splitter_prompt``, matched
  exactly) with flightdeck's rule-based sentence splitter, without a model call.
* Removing "trivial" statements asks the LLM for a Python list and runs ``eval()`` on its reply: model output is
  data, never code, so it is off (every sentence of the answer is judged).

TruLens asks for a score (0-3) as JSON or text; a small model (the packaged Gemma 3 270M) often replies with no number
at all. TruLens' own parsing decides: a reply it cannot parse (its ``ParseError``, or its unparsable-score sentinel
``-1``) or a completion that fails or runs past the timeout leaves the (question, function) pair unmeasured, counted
in ``trulens_failed`` and left out of the mean, never guessed; the reasons are kept in :attr:`TruLensRun.errors`.
Groundedness and context relevance average what TruLens scored (its own rule for groundedness: a sentence or a
context whose reply is unparsable is skipped, and the pair fails when none is scored). TruLens' endpoint runs each
completion once (``retries=0``: a local model fails the same way twice) and unpaced.

Importing TruLens sets ``KMP_DUPLICATE_LIB_OK=TRUE`` in the process environment (``trulens/core/__init__.py``, an MKL
workaround); the runner imports this module only when ``evaluation.tools`` has ``trulens``.
"""

from __future__ import annotations

import logging
import math
import statistics
import threading
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import PrivateAttr

from flightdeck.errors import FlightdeckError
from flightdeck.evaluation.metrics.text import strip_citations
from flightdeck.models.generators.extractive import split_sentences
from flightdeck.registry.lookup import optional_import

_NEEDS = ("trulens", "evaluation tool 'trulens'")  # the extra, and what the error says needs it
optional_import("trulens.feedback", *_NEEDS)
LLMProvider = optional_import("trulens.feedback.llm_provider", *_NEEDS).LLMProvider
_Endpoint = optional_import("trulens.core.feedback.endpoint", *_NEEDS).Endpoint
_GroundednessConfigs = optional_import("trulens.core.metric.metric", *_NEEDS).GroundednessConfigs
_SPLITTER_PROMPT = optional_import("trulens.feedback.templates.rag", *_NEEDS).Groundedness.sentences_splitter_prompt

__all__ = ["TRULENS_FEEDBACKS", "DEFAULT_FEEDBACKS", "FlightdeckTruLensProvider", "TruLensRun", "trulens_samples",
           "trulens_run", "trulens_scores", "metric_names"]

_LOG = logging.getLogger("flightdeck.trulens")

#: flightdeck's name of each score → the feedback function of TruLens' LLMProvider that measures it
TRULENS_FEEDBACKS: dict[str, str] = {
    "groundedness": "groundedness_measure_with_cot_reasons",
    "answer_relevance": "relevance",
    "context_relevance": "context_relevance",
}
DEFAULT_FEEDBACKS: tuple[str, ...] = tuple(TRULENS_FEEDBACKS)
#: what each function needs of a sample besides the question
_NEEDS_CONTEXTS = frozenset({"groundedness", "context_relevance"})
PREFIX = "trulens_"
#: retrieved texts given to TruLens per question (context relevance asks the LLM once per context)
MAX_CONTEXTS = 3
#: tokens one completion may take: TruLens asks for a score, with criteria and evidence for groundedness
MAX_TOKENS = 128
#: seconds one completion may take
TIMEOUT_S = 120


def metric_names(feedbacks: Sequence[str] = DEFAULT_FEEDBACKS) -> tuple[str, ...]:
    """The names the run reports for ``feedbacks``: ``trulens_<name>`` each, then ``trulens_failed``."""
    return (*(PREFIX + f for f in feedbacks), PREFIX + "failed")


class FlightdeckTruLensProvider(LLMProvider):  # type: ignore[misc, valid-type]
    """A flightdeck LLM generator as TruLens' LLM provider: TruLens' messages (a system prompt and a user prompt) go
    to the generator as they are, greedy at TruLens' temperature 0.

    The reply is streamed (``complete_stream``; ``complete`` for a generator without it) and ends where its first
    JSON object closes (TruLens reads the whole reply as JSON first), or at ``max_tokens``, or fails past
    ``timeout`` seconds. Calls run one at a time (TruLens' groundedness judges the sentences from a thread pool);
    the timeout counts from when a call gets its turn. TruLens' sentence-splitter prompt is answered with
    flightdeck's sentence splitter (see the module's docstring), without a model call.
    """

    model_engine: str = "flightdeck"
    _generator: Any = PrivateAttr(None)
    _max_tokens: int = PrivateAttr(MAX_TOKENS)
    _timeout: float = PrivateAttr(TIMEOUT_S)
    _lock: Any = PrivateAttr(None)

    def __init__(self, generator: Any, *, max_tokens: int = MAX_TOKENS, timeout: float = TIMEOUT_S) -> None:
        engine = str(getattr(generator, "model_id", "") or type(generator).__name__)
        # one attempt per completion, unpaced; not registered in TruLens' list of live endpoints
        endpoint = _Endpoint(name=f"flightdeck:{engine}", rpm=1e9, retries=0, _register_instance=False)
        super().__init__(model_engine=engine, endpoint=endpoint)
        self._generator = generator
        self._max_tokens = max_tokens
        self._timeout = timeout
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"FlightdeckTruLensProvider({self.model_engine})"

    def _create_chat_completion(self, prompt: str | None = None, messages: Sequence[dict[str, Any]] | None = None,
                                response_format: Any = None, **kwargs: Any) -> str:
        chat = [{"role": str(m["role"]), "content": str(m["content"])} for m in messages or ()]
        if prompt is not None:
            chat.append({"role": "user", "content": prompt})
        if len(chat) == 2 and chat[0]["role"] == "system" and chat[0]["content"] == _SPLITTER_PROMPT:
            return "\n".join(s.strip() for s in split_sentences(chat[1]["content"]) if s.strip())
        temperature = kwargs.get("temperature")
        temp = 0.0 if temperature is None or temperature < 1e-3 else float(temperature)
        with self._lock:
            return self._complete(chat, temp)

    def _complete(self, messages: list[dict[str, str]], temperature: float) -> str:
        stream = getattr(self._generator, "complete_stream", None)
        if stream is None:
            return str(self._generator.complete(messages, max_tokens=self._max_tokens, temperature=temperature).text)
        deadline = time.monotonic() + self._timeout
        pieces: list[str] = []
        chunks = stream(messages, max_tokens=self._max_tokens, temperature=temperature)
        try:
            for piece in chunks:
                if not isinstance(piece, str):  # the finished Completion
                    return str(piece.text)
                pieces.append(piece)
                closed = _first_json_object("".join(pieces))
                if closed is not None:
                    return closed
                if time.monotonic() > deadline:
                    raise TimeoutError(f"one completion took over {self._timeout} s")
        finally:
            chunks.close()  # stops the generation (and frees the model) when the reply ended early
        return "".join(pieces).strip()


def _first_json_object(text: str) -> str | None:
    """``text`` up to where the first JSON object in it closes (a brace count outside strings), or None while it is
    open. A reply that is only that object is what TruLens parses as JSON."""
    start = text.find("{")
    if start == -1:
        return None
    depth, quoted, escaped = 0, False, False
    for i in range(start, len(text)):
        char = text[i]
        if quoted:
            escaped = not escaped and char == "\\"
            quoted = escaped or char != '"'
            continue
        if char == '"':
            quoted = True
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return text[:i + 1].strip()
    return None


@dataclass
class TruLensRun:
    """What a TruLens run measured: the means (``trulens_<name>``, None where no question was scored, and
    ``trulens_failed``), each question's scores by id, why each failed (question, function) pair failed, and what
    was left out of a mean that was still scored (a sentence or a context TruLens could not score)."""

    metrics: dict[str, float | None]
    per_question: dict[str, dict[str, float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    samples: int = 0


def _get(result: Any, name: str, default: Any = None) -> Any:
    return result.get(name, default) if isinstance(result, dict) else getattr(result, name, default)


def trulens_samples(results: Sequence[Any], max_contexts: int = MAX_CONTEXTS) -> list[tuple[str, dict[str, Any]]]:
    """``(question id, sample)`` of each answered question (found, no error): ``question``, ``answer`` (citation
    markers removed: they are not statements) and ``contexts`` (the texts of the first ``max_contexts`` hits, in
    rank order; empty when nothing was retrieved)."""
    samples = []
    for r in results:
        answer = strip_citations(_get(r, "answer", "") or "").strip()
        if not _get(r, "found") or _get(r, "error") or not answer:
            continue
        contexts = [h["text"] for h in (_get(r, "retrieved") or []) if h.get("text")][:max_contexts]
        samples.append((str(_get(r, "id")), {"question": _get(r, "question"), "answer": answer,
                                             "contexts": contexts}))
    return samples


def _scored(value: Any) -> float | None:
    """A TruLens score in [0, 1], or None for its unparsable sentinel (-1) or anything not a finite number."""
    if isinstance(value, int | float) and math.isfinite(value) and 0.0 <= value <= 1.0:
        return float(value)
    return None


def _feedback(provider: Any, name: str, sample: dict[str, Any], errors: list[str], qid: str) -> float | None:
    """One TruLens feedback function on one sample; what it could not score goes to ``errors``."""
    question, answer, contexts = sample["question"], sample["answer"], sample["contexts"]
    if name == "answer_relevance":
        value = _scored(provider.relevance(prompt=question, response=answer))
        if value is None:
            errors.append(f"{qid} {name}: no score (TruLens could not parse the reply)")
        return value
    if name == "groundedness":
        config = _GroundednessConfigs(use_sent_tokenize=False, filter_trivial_statements=False)
        got, reasons = provider.groundedness_measure_with_cot_reasons(source="\n\n".join(contexts), statement=answer,
                                                                      groundedness_configs=config)
        value = _scored(got)
        if value is None:
            errors.append(f"{qid} {name}: no sentence scored (TruLens could not parse the replies)")
        else:
            unscored = sum(_scored(r.get("score")) is None for r in (reasons or {}).get("reasons", []))
            if unscored:
                errors.append(f"{qid} {name}: {unscored} sentence(s) unscored, left out of its mean")
        return value
    values = []
    for n, context in enumerate(contexts, 1):  # context_relevance: each context, then the mean (TruLens' RAG triad)
        try:
            value = _scored(provider.context_relevance(question=question, context=context))
        except Exception as exc:  # noqa: BLE001 - one context's reply: recorded, the others still count
            value = None
            errors.append(f"{qid} {name} (context {n}): {_why(exc)}")
        else:
            if value is None:
                errors.append(f"{qid} {name} (context {n}): no score (TruLens could not parse the reply)")
        if value is not None:
            values.append(value)
    return statistics.fmean(values) if values else None


def _why(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}"[:300] if text else type(exc).__name__


def _check(feedbacks: Sequence[str], generator: Any) -> tuple[str, ...]:
    chosen = tuple(feedbacks)
    for name in chosen:
        if name not in TRULENS_FEEDBACKS:
            raise ValueError(f"unknown TruLens feedback {name!r}; flightdeck runs {', '.join(TRULENS_FEEDBACKS)}")
    # without it TruLens has no LLM: its other providers call OpenAI, Bedrock, LiteLLM... (an API key, the network)
    if not callable(getattr(generator, "complete", None)):
        raise FlightdeckError(f"evaluation tool 'trulens' needs an LLM generator (with complete()), got "
                              f"{type(generator).__name__}; set evaluation.judge or use an LLM model.generator")
    return chosen


def trulens_run(results: Sequence[Any], generator: Any, feedbacks: Sequence[str] | None = None, *,
                max_contexts: int = MAX_CONTEXTS, max_tokens: int = MAX_TOKENS,
                timeout: float = TIMEOUT_S) -> TruLensRun:
    """Run TruLens' feedback functions (flightdeck's names of :data:`TRULENS_FEEDBACKS`, default all) on the
    answered questions of ``results`` (see :func:`trulens_samples`) with ``generator`` as TruLens' LLM: a failed or
    unparsable (question, function) pair counts in ``trulens_failed``; a function that needs contexts skips a
    question without any."""
    chosen = _check(feedbacks or DEFAULT_FEEDBACKS, generator)
    samples = trulens_samples(results, max_contexts)
    provider = FlightdeckTruLensProvider(generator, max_tokens=max_tokens, timeout=timeout)
    scores: dict[str, dict[str, float]] = {qid: {} for qid, _ in samples}
    values: dict[str, list[float]] = {name: [] for name in chosen}
    failed, measured = 0, 0
    errors: list[str] = []
    with _quiet():
        for qid, sample in samples:
            for name in chosen:
                if name in _NEEDS_CONTEXTS and not sample["contexts"]:
                    continue
                measured += 1
                try:
                    value = _feedback(provider, name, sample, errors, qid)
                except Exception as exc:  # noqa: BLE001 - TruLens' ParseError, a failed completion: counted
                    value = None
                    errors.append(f"{qid} {name}: {_why(exc)}")
                if value is None:
                    failed += 1
                else:
                    scores[qid][PREFIX + name] = round(value, 5)
                    values[name].append(value)
    out: dict[str, float | None] = {
        PREFIX + name: (round(statistics.fmean(v), 5) if v else None) for name, v in values.items()}
    out[PREFIX + "failed"] = float(failed)
    if failed:
        _LOG.info("trulens: %d of %d (question, function) pairs unmeasured; first: %s", failed, measured,
                  errors[0] if errors else "")
    return TruLensRun(out, {q: s for q, s in scores.items() if s}, errors, len(samples))


class _quiet:
    """TruLens logs each failed request at ERROR and warns about replies without evidence: what failed is kept in
    the run's errors instead of printed."""

    def __enter__(self) -> None:
        self._logger = logging.getLogger("trulens")
        self._saved = (self._logger.propagate, self._logger.level)
        self._logger.propagate = False
        self._logger.setLevel(logging.CRITICAL)
        self._warnings = warnings.catch_warnings()
        self._warnings.__enter__()
        warnings.filterwarnings("ignore", module=r"trulens\..*")
        warnings.filterwarnings("ignore", message="No supporting evidence provided")

    def __exit__(self, *exc: object) -> None:
        self._warnings.__exit__(*exc)
        self._logger.propagate, level = self._saved
        self._logger.setLevel(level)


def trulens_scores(results: Sequence[Any], generator: Any, feedbacks: Sequence[str] | None = None,
                   **options: Any) -> dict[str, float | None]:
    """TruLens' feedback functions over ``results`` (see :func:`trulens_run`): the means by name
    (``trulens_groundedness``, …, ``trulens_failed``); each scored question's ``scores`` gets its own
    ``trulens_*`` values, as the runner's other metrics do."""
    run = trulens_run(results, generator, feedbacks or DEFAULT_FEEDBACKS, **options)
    for r in results:
        got = run.per_question.get(str(_get(r, "id")))
        if got and isinstance(_get(r, "scores"), dict):
            _get(r, "scores").update(got)
    return run.metrics
