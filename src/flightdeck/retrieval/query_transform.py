"""Query transformations (``retrieval.query_transformation``): the configured LLM generator turns one query
into the searches that are run and fused.

- ``rewrite``: one clearer search query (searched beside the original unless ``keep_original: false``);
- ``multi_query``: ``queries`` alternative phrasings, each searched, all fused (RAG-Fusion);
- ``hyde``: a hypothetical answer passage (Gao et al., 2022, "Precise Zero-Shot Dense Retrieval without
  Relevance Labels") embedded as a document and averaged with the query's vector; BM25 still reads the query.

Each returns :class:`QueryVariant` s; :class:`~flightdeck.retrieval.search.HybridSearcher` runs each variant's
keyword and vector searches and fuses every list with the configured fusion. The model's output is untrusted
text: it is only ever searched for, cut to a bounded length, and shown in ``search --json`` as ``queries``.
Outputs are cached per query, so a repeated query costs one LLM call per process.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import asdict, dataclass
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["QueryVariant", "QueryTransformation", "RewriteConfig", "RewriteTransform", "MultiQueryConfig",
           "MultiQueryTransform", "HydeConfig", "HydeTransform", "parse_lines"]

MAX_VARIANT_CHARS = 400
MAX_PASSAGE_CHARS = 2000
_BULLET = re.compile(r"^\s*(?:[-*•]|\d{1,2}[.)]|q\d{1,2}[:.)])\s*", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_WORDS = re.compile(r"[^\W_]+")


@dataclass(frozen=True)
class QueryVariant:
    """One search a transformation asks for.

    ``keyword`` is what BM25 reads (None: no keyword search for this variant); the vector is the mean of
    ``vector_query`` embedded as a query and ``passages`` embedded as documents (neither: no vector search).
    """

    label: str
    keyword: str | None
    vector_query: str | None
    passages: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _clean(text: str, limit: int) -> str:
    text = " ".join(_CONTROL.sub(" ", text).split())
    return text[:limit].rsplit(" ", 1)[0] if len(text) > limit else text


def _same_words(text: str) -> str:
    return " ".join(_WORDS.findall(text.lower()))


def parse_lines(text: str, query: str, limit: int) -> list[str]:
    """The distinct query lines of a model's answer, bullets and numbering and quotes removed, any preamble
    ("Here are...:") left out, and so is a line with the same words as the query or an earlier line (a small
    model often echoes the question: searching it twice would only weigh it double); at most ``limit``."""
    out: list[str] = []
    seen = {_same_words(query)}
    for line in text.splitlines():
        line = _BULLET.sub("", line).strip().strip('"\'`').strip()
        key = _same_words(line)
        if not key or line.endswith(":") or key in seen:
            continue
        seen.add(key)
        out.append(_clean(line, MAX_VARIANT_CHARS))
        if len(out) >= limit:
            break
    return out


@runtime_checkable
class QueryTransformation(Protocol):
    """A ``retrieval.query_transformation`` provider: the searches to run for one query (the original among them
    where the provider keeps it), written by the LLM generator it was built with."""

    def variants(self, query: str) -> list[QueryVariant]: ...


class Example(BaseModel):
    """A worked example shown to the model before the query (few-shot): a question and the wanted output."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    question: str
    output: str


class _TransformConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    max_tokens: int = Field(96, ge=8, le=2048, description="most tokens the model writes per query")
    cache_size: int = Field(1024, ge=0, description="queries whose transformation is kept in memory")
    examples: list[Example] = Field(default_factory=list, description="few-shot examples; a small or base "
                                    "model follows the format only when shown it (replace with your domain's)")


class _Transform:
    """Shared: the generator (given by the assembly: ``Flavor.takes``), the per-query cache, and the call."""

    config: _TransformConfig
    label = ""

    def __init__(self, generator: Any = None) -> None:
        self.generator = generator
        self._cache: OrderedDict[str, list[QueryVariant]] = OrderedDict()
        self._lock = threading.Lock()

    def variants(self, query: str) -> list[QueryVariant]:
        """The searches to run for ``query`` (cached)."""
        with self._lock:
            if query in self._cache:
                self._cache.move_to_end(query)
                return self._cache[query]
        if self.generator is None or not hasattr(self.generator, "complete"):
            raise RuntimeError(f"query transformation {self.label!r} needs an LLM generator; none was given")
        found = self._variants(query)
        with self._lock:
            self._cache[query] = found
            while len(self._cache) > self.config.cache_size:
                self._cache.popitem(last=False)
        return found

    cue = ""  # the label the model's output follows: "Query:", "Passage:"

    def _ask(self, system: str, query: str) -> str:
        messages = [{"role": "system", "content": system}]
        for example in self.config.examples:
            messages.append({"role": "user", "content": f"Question: {example.question}\n{self.cue}"})
            messages.append({"role": "assistant", "content": example.output})
        messages.append({"role": "user", "content": f"Question: {query}\n{self.cue}"})
        return self.generator.complete(messages, max_tokens=self.config.max_tokens).text

    def _variants(self, query: str) -> list[QueryVariant]:
        raise NotImplementedError


class RewriteConfig(_TransformConfig):
    """Settings of ``query_transformation: {provider: rewrite, ...}``."""

    keep_original: bool = Field(True, description="search the original query too and fuse both")
    system_prompt: str = Field(
        "Rewrite each question as one precise keyword search query: keep every key term, spell out "
        "abbreviations, add close synonyms.")
    examples: list[Example] = Field(default_factory=lambda: [
        Example(question="How do I remove a file in Python?", output="python delete remove file os.remove path"),
        Example(question="Vitamin D deficiency increases the risk of fractures.",
                output="vitamin D deficiency fracture risk bone density")])


class RewriteTransform(_Transform):
    """One rewritten query (and the original, fused)."""

    label = "rewrite"
    cue = "Query:"

    def __init__(self, config: RewriteConfig | None = None, generator: Any = None) -> None:
        super().__init__(generator)
        self.config = config or RewriteConfig()

    def _variants(self, query: str) -> list[QueryVariant]:
        lines = parse_lines(self._ask(self.config.system_prompt, query), query, 1)
        out = [QueryVariant("original", query, query)] if self.config.keep_original or not lines else []
        return out + [QueryVariant("rewrite", q, q) for q in lines]


class MultiQueryConfig(_TransformConfig):
    """Settings of ``query_transformation: {provider: multi_query, ...}``."""

    queries: int = Field(3, ge=1, le=10, description="alternative queries asked of the model")
    keep_original: bool = Field(True, description="search the original query too")
    max_tokens: int = Field(72, ge=8, le=2048, description="most tokens the model writes per query (a small "
                            "model may not stop by itself after the last line)")
    system_prompt: str = Field(
        "For each question, write {n} different search queries that would find documents answering it, using "
        "different words for the same meaning. One query per line.")
    examples: list[Example] = Field(default_factory=lambda: [
        Example(question="How do I remove a file in Python?",
                output="delete a file with python\nos.remove file path\nerase a file from disk in a script"),
        Example(question="Vitamin D deficiency increases the risk of fractures.",
                output="low vitamin D and bone fractures\nvitamin D levels fracture incidence\n"
                       "hypovitaminosis D osteoporotic fracture risk")])


class MultiQueryTransform(_Transform):
    """``queries`` phrasings of the question, searched separately and fused (RAG-Fusion)."""

    label = "multi_query"
    cue = "Queries:\n"

    def __init__(self, config: MultiQueryConfig | None = None, generator: Any = None) -> None:
        super().__init__(generator)
        self.config = config or MultiQueryConfig()

    def _variants(self, query: str) -> list[QueryVariant]:
        n = self.config.queries
        text = self._ask(self.config.system_prompt.replace("{n}", str(n)), query)
        lines = parse_lines(text, query, n)
        out = [QueryVariant("original", query, query)] if self.config.keep_original or not lines else []
        return out + [QueryVariant(f"q{i}", q, q) for i, q in enumerate(lines, 1)]


class HydeConfig(_TransformConfig):
    """Settings of ``query_transformation: {provider: hyde, ...}``."""

    include_query: bool = Field(True, description="average the query's own vector with the passages'")
    max_tokens: int = Field(128, ge=8, le=2048, description="most tokens per passage")
    system_prompt: str = Field(
        "For each question, write a short passage (one to three sentences) that answers it, in the style of "
        "the documents being searched.")
    examples: list[Example] = Field(default_factory=lambda: [
        Example(question="How do I remove a file in Python?",
                output="To delete a file, call os.remove() with its path. It raises FileNotFoundError when the "
                       "file does not exist."),
        Example(question="Vitamin D deficiency increases the risk of fractures.",
                output="Low serum vitamin D levels were associated with a higher incidence of hip fractures in "
                       "older adults, independent of bone mineral density.")])


class HydeTransform(_Transform):
    """Hypothetical Document Embeddings: vector search by an imagined answer; keyword search by the query."""

    label = "hyde"
    cue = "Passage:"

    def __init__(self, config: HydeConfig | None = None, generator: Any = None) -> None:
        super().__init__(generator)
        self.config = config or HydeConfig()

    def _variants(self, query: str) -> list[QueryVariant]:
        # One passage: at temperature 0 more would be copies, and each costs a full LLM call on the query path.
        text = _clean(self._ask(self.config.system_prompt, query), MAX_PASSAGE_CHARS)
        # An echo of the question is no hypothetical document: the query's own vector already covers it.
        passages = (text,) if text and _same_words(text) != _same_words(query) else ()
        vector_query = query if self.config.include_query or not passages else None
        return [QueryVariant("hyde", query, vector_query, passages)]
