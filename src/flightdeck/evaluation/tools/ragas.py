"""Ragas (docs.ragas.io) on flightdeck's evaluation results, judged by flightdeck's own generator and embedder:
offline, no API key, no usage events.

:func:`ragas_scores` turns each answered :class:`~flightdeck.evaluation.runner.QuestionResult` into a Ragas
``SingleTurnSample`` (``user_input`` the question, ``response`` the answer without its citation markers,
``retrieved_contexts`` the texts of the first retrieved hits in rank order, ``reference`` the set's reference answer)
and runs Ragas' own ``evaluate()`` on them with these metrics of the installed Ragas (0.3):

================================  ============================================  ===================================
flightdeck name                   Ragas metric                                   needs
================================  ============================================  ===================================
``ragas_faithfulness``            ``Faithfulness``                               answer, contexts
``ragas_answer_relevancy``        ``ResponseRelevancy`` (+ the embedder)         question, answer
``ragas_context_precision``       ``LLMContextPrecisionWithReference``           question, contexts, reference
``ragas_context_recall``          ``LLMContextRecall``                           question, contexts, reference
``ragas_factual_correctness``     ``FactualCorrectness`` (F1 of claims)          answer, reference
================================  ============================================  ===================================

A metric scores only the samples that have what it needs (an answer to an unanswerable question has no reference,
so it gets faithfulness and relevancy only). The generator is Ragas' LLM through :class:`FlightdeckRagasLLM` (any
flightdeck LLM generator: ``complete(messages, max_tokens=, temperature=, stop=)``), the embedder Ragas' embeddings
through :class:`FlightdeckRagasEmbeddings`. Ragas asks for JSON; a small model (the packaged Gemma 3 270M) often
writes something else, runs out of tokens or of time. Such a (question, metric) pair is counted in
``ragas_failed`` and left out of the mean, never guessed and never allowed to stop the run; what went wrong is
kept in :attr:`RagasRun.errors`. Ragas runs one job at a time (``max_workers=1``), each within ``timeout`` seconds,
and does not retry a failed call (a local model fails the same way twice). A model that cannot be reached (a
connection refused or timed out, an API key refused, a model the server lacks: :func:`_unreachable`) is asked once:
every later call fails at once with the same error (flightdeck's generators name the server and the fix), all the
pairs are counted in ``ragas_failed`` and a warning says why (:attr:`RagasRun.unreachable`); the run's other
metrics are kept. Any other error of one call (a prompt too long for the model's window, say) fails its job only.

``ResponseRelevancy`` asks the LLM for ``strictness`` questions per answer (Ragas' default 3) at Ragas' own
temperature for one completion, 1e-8, which flightdeck's generators read as greedy: the three would be one question
asked three times, so the default here is 1 (the same score for a third of the time).

Ragas posts usage events to its server unless ``RAGAS_DO_NOT_TRACK`` is ``true`` (``ragas/_analytics.py``); this
module sets it before importing Ragas, so nothing leaves the machine. Two things Ragas does on import or use that
concern the whole process: ``ragas.executor`` applies ``nest_asyncio`` to asyncio (so that its event loop nests in
a running one), and each score writes an anonymous id to ``~/.local/share/ragas/uuid.json`` (read only by the
tracking that is switched off). Importing this module is what brings both in: the runner imports it only when
``evaluation.tools`` has ``ragas``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

# Before Ragas is imported: no usage events, ever (flightdeck is offline; `true` is the only value Ragas reads as off)
os.environ["RAGAS_DO_NOT_TRACK"] = "true"

from flightdeck.errors import FlightdeckError  # noqa: E402
from flightdeck.evaluation.metrics.text import strip_citations  # noqa: E402
from flightdeck.registry.lookup import optional_import  # noqa: E402

_NEEDS = ("ragas", "evaluation tool 'ragas'")  # the extra, and what the error says needs it
ragas = optional_import("ragas", *_NEEDS)
_metrics = optional_import("ragas.metrics", *_NEEDS)
_analytics = optional_import("ragas._analytics", *_NEEDS)
_analytics.do_not_track.cache_clear()  # read once and cached: an earlier import must not keep tracking on
BaseRagasLLM = optional_import("ragas.llms.base", *_NEEDS).BaseRagasLLM
BaseRagasEmbeddings = optional_import("ragas.embeddings.base", *_NEEDS).BaseRagasEmbeddings
_outputs = optional_import("langchain_core.outputs", *_NEEDS)

__all__ = ["RAGAS_METRICS", "DEFAULT_METRICS", "FlightdeckRagasLLM", "FlightdeckRagasEmbeddings", "RagasRun",
           "ragas_samples", "ragas_run", "ragas_scores", "metric_names"]

_LOG = logging.getLogger("flightdeck.ragas")

#: flightdeck's name of each metric → the Ragas class that measures it
RAGAS_METRICS: dict[str, str] = {
    "faithfulness": "Faithfulness",
    "answer_relevancy": "ResponseRelevancy",
    "context_precision": "LLMContextPrecisionWithReference",
    "context_recall": "LLMContextRecall",
    "factual_correctness": "FactualCorrectness",
}
DEFAULT_METRICS: tuple[str, ...] = tuple(RAGAS_METRICS)
PREFIX = "ragas_"
#: retrieved texts given to Ragas per question (context precision asks the LLM once per context)
MAX_CONTEXTS = 3
#: tokens one Ragas completion may take: its JSON lists statements with a reason each
MAX_TOKENS = 256
#: a reply that writes one line (of at least REPEAT_CHARS characters) this often is a model stuck in a loop: it is
#: cut and fails at once instead of running to ``max_tokens`` (a line that long, such as a statement with its reason,
#: is never repeated in a reply Ragas asks for)
REPEATS = 3
REPEAT_CHARS = 30
#: seconds one (question, metric) job may take, every LLM call of it together
TIMEOUT_S = 120


def metric_names(metrics: Sequence[str] = DEFAULT_METRICS) -> tuple[str, ...]:
    """The names the run reports for ``metrics``: ``ragas_<metric>`` each, then ``ragas_failed``."""
    return (*(PREFIX + m for m in metrics), PREFIX + "failed")


class RepetitionError(RuntimeError):
    """The model writes the same text over and over (small models do, on long JSON prompts)."""


class FlightdeckRagasLLM(BaseRagasLLM):
    """A flightdeck LLM generator as Ragas' LLM: each Ragas prompt becomes one user message.

    The reply is streamed (``complete_stream``; ``complete`` for a generator without it) and ends where its first
    JSON value closes, which is all Ragas reads of it. A reply that loops (:func:`_repeated_line`) or runs past
    the run's timeout is cut and fails its job; one cut by ``max_tokens`` is reported to Ragas as unfinished,
    which fails it too, rather than parse half a JSON object. ``n`` completions are ``n`` calls. Calls run on
    Ragas' event loop one after the other: the generator is never called from two threads, and a job past its
    timeout is cancelled at its next call.
    """

    def __init__(self, generator: Any, *, max_tokens: int = MAX_TOKENS, run_config: Any = None) -> None:
        super().__init__(run_config=run_config or ragas.RunConfig())
        self.generator = generator
        self.max_tokens = max_tokens
        #: the error of a generator that could not be reached (``Name: message``); "" while it answers
        self.unreachable = ""
        self._unreachable: BaseException | None = None

    def __repr__(self) -> str:
        return f"FlightdeckRagasLLM({getattr(self.generator, 'model_id', '') or type(self.generator).__name__})"

    def is_finished(self, response: Any) -> bool:
        return all((g.generation_info or {}).get("finish_reason") != "length"
                   for gens in response.generations for g in gens)

    def generate_text(self, prompt: Any, n: int = 1, temperature: float | None = 1e-8,
                      stop: list[str] | None = None, callbacks: Any = None) -> Any:
        # Ragas' 1e-8 means greedy; flightdeck's generators are greedy at 0 (and reproducible)
        temp = 0.0 if temperature is None or temperature < 1e-3 else float(temperature)
        messages = [{"role": "user", "content": prompt.to_string()}]
        generations = []
        for _ in range(max(1, n)):
            if self._unreachable is not None:  # asked once: the same error for every later call, at once
                raise self._unreachable
            try:
                text, finish = self._complete(messages, temp, stop)
            except Exception as exc:
                if _unreachable(exc):  # the server is down, the key refused, …: every call would fail the same way
                    self._unreachable, self.unreachable = exc, f"{type(exc).__name__}: {exc}"
                raise
            generations.append(_outputs.Generation(text=text, generation_info={"finish_reason": finish}))
        return _outputs.LLMResult(generations=[generations])

    def _complete(self, messages: list[dict[str, str]], temperature: float, stop: list[str] | None) -> tuple[str, str]:
        """The reply, ended where its first JSON value closes (all that Ragas reads of it: ``extract_json``), and
        its finish reason. A small model goes on writing the next few-shot example: that is not waited for."""
        stream = getattr(self.generator, "complete_stream", None)
        if stream is None:
            done = self.generator.complete(messages, max_tokens=self.max_tokens, temperature=temperature, stop=stop)
            return done.text, done.finish_reason
        deadline = time.monotonic() + self.run_config.timeout
        pieces: list[str] = []
        chunks = stream(messages, max_tokens=self.max_tokens, temperature=temperature, stop=stop)
        try:
            for piece in chunks:
                if not isinstance(piece, str):  # the finished Completion
                    return piece.text, piece.finish_reason
                pieces.append(piece)
                text = "".join(pieces)
                if _json_closed(text):
                    return text.strip(), "stop"
                looping = _repeated_line(text)
                if looping:
                    raise RepetitionError(f"the model repeats itself ({looping[:80]!r} over and over); reply cut")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"one completion took over {self.run_config.timeout} s")
        finally:
            chunks.close()  # stops the generation (and frees the model) when the reply ended early
        return "".join(pieces).strip(), "stop"

    async def agenerate_text(self, prompt: Any, n: int = 1, temperature: float | None = None,
                             stop: list[str] | None = None, callbacks: Any = None) -> Any:
        result = self.generate_text(prompt, n=n, temperature=temperature, stop=stop, callbacks=callbacks)
        await asyncio.sleep(0)  # where a job past its timeout is cancelled
        return result


class FlightdeckRagasEmbeddings(BaseRagasEmbeddings):
    """A flightdeck embedder as Ragas' embeddings (``embed_query`` for a question, ``embed_documents`` else)."""

    def __init__(self, embedder: Any, run_config: Any = None) -> None:
        super().__init__()
        self.embedder = embedder
        self.set_run_config(run_config or ragas.RunConfig())

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [[float(x) for x in row] for row in self.embedder.embed_documents(list(texts))]

    def embed_query(self, text: str) -> list[float]:
        return [float(x) for x in self.embedder.embed_query(text)]

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embed_documents(texts)

    async def aembed_query(self, text: str) -> list[float]:
        return self.embed_query(text)


@dataclass
class RagasRun:
    """What a Ragas run measured: the means (``ragas_<metric>``, None where no question was scored, and
    ``ragas_failed``), each question's scores by id, and why each failed (question, metric) pair failed."""

    metrics: dict[str, float | None]
    per_question: dict[str, dict[str, float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    samples: int = 0
    #: why the LLM could not be reached (``Name: message``, naming the server where the generator does); "" if it was
    unreachable: str = ""


def _get(result: Any, name: str, default: Any = None) -> Any:
    return result.get(name, default) if isinstance(result, dict) else getattr(result, name, default)


def ragas_samples(results: Sequence[Any], max_contexts: int = MAX_CONTEXTS) -> list[tuple[str, dict[str, Any]]]:
    """``(question id, sample fields)`` of each answered question (found, no error): ``user_input``,
    ``response`` (citation markers removed: they are not claims), ``retrieved_contexts`` (the texts of the first
    ``max_contexts`` hits, in rank order; absent when nothing was retrieved) and ``reference`` (absent for an
    unanswerable question or one without a reference answer)."""
    samples = []
    for r in results:
        answer = strip_citations(_get(r, "answer", "") or "")
        if not _get(r, "found") or _get(r, "error") or not answer:
            continue
        fields: dict[str, Any] = {"user_input": _get(r, "question"), "response": answer}
        contexts = [h["text"] for h in (_get(r, "retrieved") or []) if h.get("text")][:max_contexts]
        if contexts:
            fields["retrieved_contexts"] = contexts
        reference = _get(r, "reference_answer", "") or ""
        if _get(r, "answerable", True) and reference.strip():
            fields["reference"] = reference
        samples.append((str(_get(r, "id")), fields))
    return samples


def _metric(name: str, strictness: int) -> Any:
    if name not in RAGAS_METRICS:
        raise ValueError(f"unknown Ragas metric {name!r}; flightdeck runs {', '.join(RAGAS_METRICS)}")
    cls = getattr(_metrics, RAGAS_METRICS[name])
    return cls(strictness=strictness) if name == "answer_relevancy" else cls()


class _Captured(logging.Handler):
    """Keeps Ragas' error records (one per failed job, one per unparsed reply) instead of printing them."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def ragas_run(results: Sequence[Any], generator: Any, embedder: Any, metrics: Sequence[str] | None = None, *,
              max_contexts: int = MAX_CONTEXTS, max_tokens: int = MAX_TOKENS, timeout: float = TIMEOUT_S,
              strictness: int = 1) -> RagasRun:
    """Run Ragas' ``evaluate()`` on the answered questions of ``results`` (see :func:`ragas_samples`) with
    ``generator`` as its LLM and ``embedder`` as its embeddings; ``metrics`` are flightdeck's names of
    :data:`RAGAS_METRICS` (default all). One job at a time, ``timeout`` seconds each, no retry; a failed
    (question, metric) pair counts in ``ragas_failed``."""
    chosen = tuple(metrics or DEFAULT_METRICS)
    for name in chosen:
        _metric(name, strictness)  # an unknown name fails before any model runs
    # without them Ragas would build its default OpenAI LLM and embeddings: an API key, and the network
    if not callable(getattr(generator, "complete", None)):
        raise FlightdeckError(f"evaluation tool 'ragas' needs an LLM generator (with complete()), got "
                              f"{type(generator).__name__}; set evaluation.judge or use an LLM model.generator")
    if not callable(getattr(embedder, "embed_documents", None)):
        raise FlightdeckError(f"evaluation tool 'ragas' needs an embedder (with embed_documents()), got "
                              f"{type(embedder).__name__}")
    samples = ragas_samples(results, max_contexts)
    config = ragas.RunConfig(timeout=max(1, math.ceil(timeout)), max_retries=1, max_wait=1, max_workers=1, seed=0)
    llm = FlightdeckRagasLLM(generator, max_tokens=max_tokens, run_config=config)
    embeddings = FlightdeckRagasEmbeddings(embedder, run_config=config)
    scores: dict[str, dict[str, float]] = {qid: {} for qid, _ in samples}
    values: dict[str, list[float]] = {name: [] for name in chosen}
    failed = 0
    errors: list[str] = []
    # a metric scores the samples that have every column it needs; metrics that score the same samples run together
    groups: dict[tuple[int, ...], list[tuple[str, Any]]] = {}
    for name in chosen:
        metric = _metric(name, strictness)
        needed = metric.required_columns.get("SINGLE_TURN", set())
        eligible = tuple(i for i, (_, s) in enumerate(samples) if all(s.get(c) for c in needed))
        if eligible:
            groups.setdefault(eligible, []).append((name, metric))
    for eligible, group in groups.items():
        dataset = ragas.EvaluationDataset.from_list([samples[i][1] for i in eligible])
        captured = _Captured()
        logger = logging.getLogger("ragas")
        saved = (logger.propagate, logger.level)
        logger.addHandler(captured)
        logger.propagate = False
        logger.setLevel(logging.WARNING)
        try:
            outcome = ragas.evaluate(dataset, metrics=[m for _, m in group], llm=llm, embeddings=embeddings,
                                     run_config=config, raise_exceptions=False, show_progress=False)
            rows: list[dict[str, Any]] = list(outcome.scores)
        except Exception as exc:  # Ragas itself failed (not one job): every pair of the group is unmeasured
            rows = [{} for _ in eligible]
            errors.append(f"ragas.evaluate({', '.join(n for n, _ in group)}): {type(exc).__name__}: {exc}")
        finally:
            logger.removeHandler(captured)
            logger.propagate = saved[0]
            logger.setLevel(saved[1])
        job_errors = _job_errors(captured.records)
        for row_no, (i, row) in enumerate(zip(eligible, rows, strict=True)):
            qid = samples[i][0]
            for col, (name, _) in enumerate(group):
                value = list(row.values())[col] if col < len(row) else None
                if isinstance(value, int | float) and math.isfinite(value):
                    scores[qid][PREFIX + name] = round(float(value), 5)
                    values[name].append(float(value))
                else:
                    failed += 1
                    why = job_errors.get(row_no * len(group) + col, "no score (Ragas returned NaN)")
                    errors.append(f"{qid} {name}: {why}")
    out: dict[str, float | None] = {
        PREFIX + name: (round(statistics.fmean(v), 5) if v else None) for name, v in values.items()}
    out[PREFIX + "failed"] = float(failed)
    pairs = sum(len(e) * len(g) for e, g in groups.items())
    if llm.unreachable:
        _LOG.warning("evaluation tool 'ragas': the LLM %s could not be reached, %d of %d (question, metric) pairs "
                     "unmeasured: %s", getattr(generator, "model_id", "") or type(generator).__name__, failed, pairs,
                     llm.unreachable)
    elif errors:
        _LOG.info("ragas: %d of %d (question, metric) pairs unmeasured; first: %s", failed, pairs, errors[0])
    return RagasRun(out, {q: s for q, s in scores.items() if s}, errors, len(samples), llm.unreachable)


def _json_closed(text: str) -> bool:
    """Whether ``text`` holds a whole JSON object or array by Ragas' own rule (``ragas.prompt.utils.extract_json``:
    from the first ``{`` or ``[``, after a ```` ```json ```` fence if there is one, until its brackets balance)."""
    fence = text.find("```json")
    text = text[fence:] if fence != -1 else text
    starts = [i for i in (text.find("["), text.find("{")) if i != -1]
    if not starts:
        return False
    start = min(starts)
    opener = text[start]
    closer = "]" if opener == "[" else "}"
    depth = 0
    for char in text[start:]:
        depth += (char == opener) - (char == closer)
        if depth == 0:
            return True
    return False


def _repeated_line(text: str) -> str:
    """What shows that ``text`` is a model stuck in a loop, or ``""``: a line (stripped, at least
    :data:`REPEAT_CHARS` long) written :data:`REPEATS` times, a block of up to four lines written ``REPEATS + 1``
    times in a row at the end (``"key": "key",`` / ``"value": "key",`` / …), or a piece of a line written over and
    over at the end (at least 48 characters of it)."""
    lines = text.splitlines()
    if not text.endswith("\n"):
        lines = lines[:-1]  # the last line may still be growing
    lines = [line.strip() for line in lines if line.strip()]
    seen: dict[str, int] = {}
    for line in lines:
        if len(line) >= REPEAT_CHARS:
            seen[line] = seen.get(line, 0) + 1
            if seen[line] >= REPEATS:
                return line
    times = REPEATS + 1
    for period in range(1, 5):
        if len(lines) < period * times:
            break
        block = lines[-period:]
        if all(lines[-period * (n + 1):len(lines) - period * n] == block for n in range(times)):
            return " / ".join(block)
    # within one line: a piece of up to 32 characters written over and over ("json.loads(json.loads(json.loads(")
    tail = text.rstrip()[-256:]
    for unit in range(1, 33):
        count = max(times, -(-48 // unit))
        if len(tail) >= unit * count and tail[-unit * count:] == tail[-unit:] * count:
            return tail[-unit:] * 2
    return ""


#: classes (by name, in an exception's MRO: the SDKs are optional) that say the server was not reached: the OpenAI
#: and Anthropic SDKs' connection errors (their timeouts derive from them) and httpx's
_CONNECTION_ERRORS = frozenset({"APIConnectionError", "ConnectError", "ConnectTimeout"})
#: HTTP statuses that every later request would get too: key missing or refused, no such model or path
_FATAL_STATUS = frozenset({401, 403, 404})


def _unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it: flightdeck's generators wrap the SDK's errors) says that the model cannot
    be reached at all, rather than that this one request failed."""
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        if isinstance(link, ConnectionError) or _CONNECTION_ERRORS & {c.__name__ for c in type(link).__mro__} \
                or getattr(link, "status_code", None) in _FATAL_STATUS:
            return True
        link = link.__cause__ or link.__context__
    return False


def _job_errors(records: list[logging.LogRecord]) -> dict[int, str]:
    """Job index → ``ExceptionName: message`` from Ragas' executor log ("Exception raised in Job[%s]: %s(%s)")."""
    found: dict[int, str] = {}
    for record in records:
        if isinstance(record.msg, str) and record.msg.startswith("Exception raised in Job[") \
                and isinstance(record.args, tuple) and len(record.args) == 3:
            job, name, message = record.args
            found[int(job)] = f"{name}: {message}"[:300] if message else str(name)
    return found


def ragas_scores(results: Sequence[Any], generator: Any, embedder: Any, metrics: Sequence[str] | None = None,
                 **options: Any) -> dict[str, float | None]:
    """Ragas' metrics over ``results`` (see :func:`ragas_run`): the means by name (``ragas_faithfulness``, …,
    ``ragas_failed``); each scored question's ``scores`` gets its own ``ragas_*`` values, as the runner's other
    metrics do."""
    run = ragas_run(results, generator, embedder, metrics, **options)
    for r in results:
        got = run.per_question.get(str(_get(r, "id")))
        if got and isinstance(_get(r, "scores"), dict):
            _get(r, "scores").update(got)
    return run.metrics
