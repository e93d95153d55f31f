"""The operations every transport serves — HTTP, WebSockets, gRPC, Flask, batch — written once, here.

Each operation authenticates and authorises its caller, counts the call against the key's limits, runs it
within the request timeout, stores the answer's trace and records its metrics. Transports only translate.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from flightdeck.errors import FlightdeckError
from flightdeck.governance.access import Permission, Role, allowed
from flightdeck.governance.api_keys import AuthenticationError, KeyStore
from flightdeck.governance.policies import AccessPolicy
from flightdeck.governance.releases import Actor
from flightdeck.models.generators.base import Answer, LlmGenerator
from flightdeck.monitoring.metrics import ServerMetrics
from flightdeck.monitoring.traces import Trace, TraceStore, new_trace_id
from flightdeck.project import Project
from flightdeck.retrieval.search import SearchResult
from flightdeck.serving.batch import BatchJobs
from flightdeck.serving.documents import DocumentNotFound, Uploads
from flightdeck.serving.limits import KeyLimiter, RateLimited
from flightdeck.serving.releases import ReleaseSwitch
from flightdeck.spec.server import ServerSettings
from flightdeck.workspace import CURRENT_INDEX
from flightdeck.workspace.audit import AuditLog, local_actor, parse_since

__all__ = ["Service", "Principal", "PermissionDenied", "RequestTimeout", "RateLimited", "LOCAL",
           "condense_query"]

#: what a served agent's trace keeps of each citation
_CITATION_KEYS = ("number", "tool", "chunk_id", "source_uri", "id", "table", "url")


class PermissionDenied(FlightdeckError):
    """A valid key whose role lacks the permission (the server answers 403)."""


class RequestTimeout(FlightdeckError):
    """A request ran past ``deployment.server.request_timeout_s`` (the server answers 504)."""


class AgentNotFound(FlightdeckError, KeyError):
    """No agent by this name (the server answers 404)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "no such agent"


class AgentCancelled(FlightdeckError):
    """A streamed agent run whose client went away: stopped at its next step."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: an API key's id and role (or the local user of a server run with ``--no-auth``)."""

    key_id: str
    role: Role


# The caller of a server started with --no-auth: local use only (the CLI refuses it on other addresses).
LOCAL = Principal("local", Role.ADMIN)

# Who answers the questions of a batch job (its owner was checked when the job was submitted).
BATCH = Principal("batch", Role.VIEWER)

# Turns of a conversation read back to condense a follow-up.
HISTORY_TURNS = 3


def condense_query(history: list[str], question: str) -> str:
    """The retrieval query of a follow-up: the previous user turn and the question, so that "how do I
    activate it?" after "how do I create a virtual environment?" retrieves about virtual environments. The
    answer is still written for ``question`` alone; only what is retrieved changes."""
    previous = [h.strip() for h in history if h.strip()]
    return f"{previous[-1]} {question}" if previous else question


class Service:
    """Search and answers over one project, for authenticated callers.

    ``keys`` None turns authentication off (``flightdeck serve --no-auth``): every caller is :data:`LOCAL`.
    ``settings`` default to the spec's ``deployment.server``; ``metrics`` to a new registry of its own; ``audit`` to the
    project's audit log (uploads and deletions are entries, and every answer too with ``governance.audit.log_queries``).
    Searches run one at a time (the searcher and the embedding model are not thread-safe); an LLM writes its
    answer outside that lock, an extractive answer (which embeds sentences) inside it.
    """

    def __init__(self, project: Project, keys: KeyStore | None, *, settings: ServerSettings | None = None,
                 metrics: ServerMetrics | None = None, writer: Callable[[], Project] | None = None,
                 audit: AuditLog | None = None, release: ReleaseSwitch | None = None) -> None:
        self.base = project
        # with a release (flightdeck serve --release): the project of the release it names now, swapped whole by
        # the switch on a promotion or rollback; a request reads it once and keeps it to its end
        self.release = release
        self.audit = audit if audit is not None else project.audit
        self.log_queries = project.spec.governance.audit.log_queries
        self.keys = keys
        self.settings = settings or project.spec.deployment.server
        self.metrics = metrics or ServerMetrics(self.settings.prices)
        self.traces = TraceStore(project.workspace)
        self.limiter = KeyLimiter(self.settings.limits, self.settings.role_limits)
        self.policy = AccessPolicy(project.spec.governance.policies)
        self._lock = threading.Lock()
        # uploads run the pipeline on a second Project over the same spec (its own models), built on first use
        self.uploads = Uploads(project, writer or (lambda: Project(project.loaded)), audit=self.audit)

    @property
    def project(self) -> Project:
        """The project answering now: the served release's, or the server's own."""
        return self.release.current if self.release is not None else self.base

    # who may do what ------------------------------------------------------------------------------
    def authenticate(self, authorization: str | None) -> Principal:
        """The caller of a request whose ``Authorization`` header is ``authorization`` (``Bearer <key>``)."""
        if self.keys is None:
            return LOCAL
        if not authorization:
            raise AuthenticationError("no API key: send `Authorization: Bearer <key>`")
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationError("the Authorization header must read `Bearer <key>`")
        record = self.keys.verify(token.strip())
        return Principal(record.id, record.role)

    def check(self, principal: Principal, permission: Permission) -> None:
        """Raise :class:`PermissionDenied` unless the caller's role holds ``permission`` and no policy
        (``governance.policies``) denies it."""
        if not allowed(principal.role, permission):
            raise PermissionDenied(f"a {principal.role.value} key may not {permission.value}; "
                                   "ask an admin for a key with a role that may")
        if self.policy.denied(principal.key_id, principal.role, permission):
            raise PermissionDenied(f"a policy in governance.policies denies {permission.value} to this key")

    @staticmethod
    def actor(principal: Principal) -> str:
        """The caller as the audit log names it: ``key:<key id>``, or the OS user for a server without auth."""
        return local_actor() if principal is LOCAL else f"key:{principal.key_id}"

    def scope(self, principal: Principal, permission: Permission) -> dict[str, Any] | None:
        """The metadata filter a policy limits the caller's reads to (None: not limited)."""
        return self.policy.scope(principal.key_id, principal.role, permission)

    def _unscoped(self, principal: Principal, what: str) -> None:
        if self.scope(principal, Permission.QUERY) or self.scope(principal, Permission.DOCUMENTS_READ):
            raise PermissionDenied(f"a key limited to some documents by governance.policies may not {what}")

    def authorize(self, principal: Principal, permission: Permission) -> None:
        """:meth:`check`, then count the call against the key's limits (:class:`RateLimited` when it is over
        one). Every operation below calls it once."""
        self.check(principal, permission)
        if self.keys is not None:
            self.limiter.admit(principal.key_id, principal.role.value)

    # what they may do -----------------------------------------------------------------------------
    def ready(self) -> dict[str, Any]:
        """Whether there is an index to answer from, and which (with the release served, when one is)."""
        if self.release is not None:
            return {"ready": True, "index_version": self.release.release.index_version,
                    "release": self.release.to_dict()}
        version = self.project.workspace.get_state(CURRENT_INDEX)
        return {"ready": version is not None, "index_version": version}

    def warm_up(self) -> str | None:
        """Load the embedding model and open the index before the first caller waits for it (a search nobody
        sees); returns the index version warmed, or None when there is no index yet."""
        version = self.ready()["index_version"]
        if version is not None:
            with self._lock:
                self.project.search("warm up", k=1)
        return version

    @property
    def generator_id(self) -> str:
        generator = self.project.generator
        return getattr(generator, "model_id", "") or self.project.spec.model.generator.provider

    def search(self, principal: Principal, query: str, k: int | None = None, mode: str | None = None,
               where: dict[str, Any] | None = None) -> dict[str, Any]:
        self.authorize(principal, Permission.SEARCH)
        if k is not None and k > self.settings.max_k:
            raise ValueError(f"k: at most {self.settings.max_k} (deployment.server.max_k), got {k}")
        where = AccessPolicy.narrowed(where, self.scope(principal, Permission.SEARCH))
        project = self.project
        with self._lock:
            result = project.search(query, k=k, mode=mode, where=where)
        self.metrics.observe_timings(result.timings_ms)
        out = result.to_dict()
        if project.release is not None:
            out["release"] = project.release.id
        return out

    def query(self, principal: Principal, question: str, *, conversation_id: str | None = None,
              max_tokens: int | None = None, request_id: str | None = None,
              operation: str = "query") -> dict[str, Any]:
        """A grounded, cited answer to ``question``, with its ``trace_id``."""
        final: dict[str, Any] | None = None
        for event in self.stream_query(principal, question, conversation_id=conversation_id,
                                       max_tokens=max_tokens, request_id=request_id, operation=operation):
            if event["event"] == "answer":
                final = event["answer"]
        assert final is not None
        return final

    def stream_query(self, principal: Principal, question: str, *, conversation_id: str | None = None,
                     max_tokens: int | None = None, request_id: str | None = None,
                     operation: str = "query", history: list[str] | None = None) -> Iterator[dict[str, Any]]:
        """The answer to ``question`` as events: ``{"event": "sources", ...}`` once retrieval is done,
        ``{"event": "token", "text": ...}`` per piece of text, then ``{"event": "answer", "answer": {...}}``.

        ``history`` (earlier user turns, oldest first) or ``conversation_id`` (the caller's own earlier turns,
        read from the traces) condense a follow-up into the retrieval query. Closing the iterator early (the
        client went away) stops the generation; past the request timeout it raises :class:`RequestTimeout`.
        """
        self.authorize(principal, Permission.QUERY)  # now, not on the first event: a refusal is not a stream
        if max_tokens is not None and max_tokens > self.settings.max_tokens:
            raise ValueError(f"max_tokens: at most {self.settings.max_tokens} (deployment.server.max_tokens), "
                             f"got {max_tokens}")
        if history is None and conversation_id:
            owner = None if principal.role is Role.ADMIN else principal.key_id
            history = [t.question for t in self.traces.conversation(conversation_id, key_id=owner,
                                                                    limit=HISTORY_TURNS)]
        return self._answer_events(principal, question, conversation_id, max_tokens, request_id, operation,
                                   condense_query(history or [], question), self.scope(principal, Permission.QUERY))

    def _answer_events(self, principal: Principal, question: str, conversation_id: str | None,
                       max_tokens: int | None, request_id: str | None, operation: str,
                       search_query: str, where: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        deadline = time.monotonic() + self.settings.request_timeout_s
        project = self.project  # one release from the first step to the last, whatever a promotion does meanwhile
        generator = project.generator
        trace = Trace(new_trace_id(), operation, question, key_id=principal.key_id, request_id=request_id,
                      conversation_id=conversation_id,
                      generator=getattr(generator, "model_id", "") or project.spec.model.generator.provider,
                      search_query=search_query if search_query != question else None)
        llm = isinstance(generator, LlmGenerator)
        if where:
            trace.details["scope"] = where
        if project.release is not None:
            trace.details["release"] = project.release.id
        steps = project.ask_stream(question, search_query=search_query, max_tokens=max_tokens, where=where)
        held = self._lock.acquire(timeout=max(0.0, deadline - time.monotonic()))
        if not held:
            raise RequestTimeout(f"no answer within {self.settings.request_timeout_s:g} s: the server is busy")
        try:
            answer: Answer | None = None
            for item in steps:
                if isinstance(item, SearchResult):
                    trace.index_version = item.index_version
                    trace.details["retrieved"] = [{"chunk_id": h.chunk_id, "score": round(h.score, 6)}
                                                  for h in item.hits]
                    if llm:
                        self._lock.release()
                        held = False
                    yield {"event": "sources", "index_version": item.index_version, "trace_id": trace.id,
                           "hits": [_source(h) for h in item.hits]}
                elif isinstance(item, Answer):
                    answer = item
                else:
                    yield {"event": "token", "text": item}
                if time.monotonic() > deadline:
                    raise RequestTimeout(f"the answer took longer than {self.settings.request_timeout_s:g} s "
                                         "(deployment.server.request_timeout_s); it was stopped")
        except BaseException as exc:
            trace.details["error"] = f"{type(exc).__name__}: {exc}"[:500] if isinstance(exc, Exception) \
                else "the client went away"
            self._finish(trace, None, principal)
            raise
        finally:
            steps.close()
            if held:
                self._lock.release()
        assert answer is not None
        out = self._finish(trace, answer, principal)
        yield {"event": "answer", "answer": out}

    def _finish(self, trace: Trace, answer: Answer | None, principal: Principal) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if answer is not None:
            out = answer.to_dict()
            out["trace_id"] = trace.id
            trace.answer, trace.found, trace.index_version = answer.answer, answer.found, answer.index_version
            trace.details.update(citations=[{"number": c.number, "chunk_id": c.chunk_id} for c in answer.citations],
                                 usage=answer.usage, timings_ms=answer.timings_ms,
                                 **{k: out[k] for k in ("prompt", "flags", "mitigation") if out.get(k)})
            if "withheld" in out.get("mitigation", {}):  # kept in the trace for review, never sent
                out["mitigation"] = {k: v for k, v in out["mitigation"].items() if k != "withheld"}
            tokens = sum(answer.usage.values()) if answer.usage else 0
            if self.keys is not None:
                self.limiter.spend_tokens(principal.key_id, tokens)
        if answer is not None:
            self.metrics.observe_timings(answer.timings_ms)
        self.metrics.observe_answer(None if answer is None else answer.found, trace.generator or "",
                                    answer.usage if answer is not None else {})
        if self.settings.store_traces:
            self.traces.record(trace)
        if self.log_queries:
            self.audit.append(self.actor(principal), "query.answered", trace.id, {
                "operation": trace.operation, "question": trace.question, "found": trace.found,
                "index_version": trace.index_version, "error": trace.details.get("error")}, redact=True)
        return out

    def trace(self, principal: Principal, trace_id: str) -> dict[str, Any]:
        """A stored trace: an admin reads any, another key only the traces of its own requests."""
        self.authorize(principal, Permission.QUERY)
        owner = None if principal.role is Role.ADMIN else principal.key_id
        return self.traces.get(trace_id, key_id=owner).to_dict()

    # agents -------------------------------------------------------------------------------------------
    AGENT_NAMES = ("default",)

    def agents(self, principal: Principal) -> list[dict[str, Any]]:
        """The agents this server runs (the spec's, named ``default``) and their tools."""
        self.authorize(principal, Permission.QUERY)
        project = self.project
        if not project.spec.agents.tools:
            return []
        loop = project.agent
        return [{"name": "default", "model": str(getattr(loop.model, "model_id", "")),
                 "tools": [t.spec.to_openai()["function"] for t in loop.tools.values()],
                 "memory": [r.provider for r in project.spec.agents.memory or []] or ["builtin"]}]

    def run_agent(self, principal: Principal, name: str, question: str, *, conversation_id: str | None = None,
                  on_step: Callable[[Any], None] | None = None) -> dict[str, Any]:
        """Run the agent ``name`` on ``question`` as ``principal`` (its memory scope: the key), traced and audited
        like every agent run; the run as a dict."""
        self.authorize(principal, Permission.QUERY)
        if name not in self.AGENT_NAMES:
            raise AgentNotFound(f"no agent {name!r}; this server runs: {', '.join(self.AGENT_NAMES)}")
        project = self.project
        actor = self.actor(principal)
        run = project.run_agent(question, conversation=conversation_id, scope=actor, actor=actor,
                                key_id=principal.key_id, on_step=on_step)
        if self.keys is not None:
            self.limiter.spend_tokens(principal.key_id, sum(run.usage.values()))
        self.metrics.observe_answer(run.status == "answered", run.model, run.usage)
        return run.to_dict()

    def stream_agent(self, principal: Principal, name: str, question: str, *,
                     conversation_id: str | None = None) -> Iterator[dict[str, Any]]:
        """:meth:`run_agent` as events: ``{"event": "step", ...}`` as each step ends, then ``{"event": "run", ...}``.
        The run goes on in a thread; closing the iterator (the client went away) stops it at its next step."""
        import queue

        self.check(principal, Permission.QUERY)  # refused now, not as the first event of a stream
        events: queue.Queue[tuple[str, Any]] = queue.Queue()
        stopped = threading.Event()

        def on_step(step: Any) -> None:
            if stopped.is_set():
                raise AgentCancelled("the client went away")
            events.put(("step", step.to_dict()))

        def work() -> None:
            try:
                events.put(("run", self.run_agent(principal, name, question, conversation_id=conversation_id,
                                                  on_step=on_step)))
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which raises it
                events.put(("error", exc))

        threading.Thread(target=work, name="flightdeck-agent-run", daemon=True).start()
        try:
            while True:
                kind, item = events.get()
                if kind == "error":
                    raise item
                yield {"event": kind, **item}
                if kind == "run":
                    return
        finally:
            stopped.set()

    def chat_with_tools(self, principal: Principal, conversation: list[dict[str, Any]], tools: list[dict[str, Any]],
                        *, tool_choice: Any = None, max_tokens: int | None = None,
                        request_id: str | None = None, operation: str = "chat_tools") -> tuple[str, Any]:
        """One turn of a client's own agent loop: the agent model calls one of the client's ``tools`` or answers
        (:func:`~flightdeck.agents.tool_calls.tool_call_turn`); traced (``operation``, default ``chat_tools``).
        Returns the trace id and the turn."""
        from flightdeck.agents.tool_calls import tool_call_turn

        self.authorize(principal, Permission.QUERY)
        if max_tokens is not None and max_tokens > self.settings.max_tokens:
            raise ValueError(f"max_tokens: at most {self.settings.max_tokens} (deployment.server.max_tokens), "
                             f"got {max_tokens}")
        model = self.project.assembly.agent_model
        question = next((str(m.get("content") or "") for m in reversed(conversation) if m.get("role") == "user"), "")
        trace = Trace(new_trace_id(), operation, question[:4000], key_id=principal.key_id, request_id=request_id,
                      generator=str(getattr(model, "model_id", "")))
        turn = tool_call_turn(model, conversation, tools, tool_choice=tool_choice, max_tokens=max_tokens)
        usage = {"prompt_tokens": turn.prompt_tokens, "completion_tokens": turn.completion_tokens}
        trace.answer, trace.found = turn.content, None
        trace.details.update(tools=[t.get("function", {}).get("name") for t in tools], usage=usage,
                             tool_calls=[c["function"] for c in turn.tool_calls])
        if self.keys is not None:
            self.limiter.spend_tokens(principal.key_id, sum(usage.values()))
        self.metrics.observe_answer(None, trace.generator or "", usage)
        if self.settings.store_traces:
            self.traces.record(trace)
        if self.log_queries:
            self.audit.append(self.actor(principal), "query.answered", trace.id, {
                "operation": trace.operation, "question": trace.question,
                "tool_calls": [c["function"]["name"] for c in turn.tool_calls]}, redact=True)
        return trace.id, turn

    def agent_turns(self, principal: Principal, *, question: str = "", history: Sequence[Mapping[str, str]] = (),
                    tools: Sequence[Mapping[str, Any]] = (), file_search: bool = False, instructions: str = "",
                    resume: Mapping[str, Any] | None = None, output: str | None = None, operation: str = "agent",
                    request_id: str | None = None) -> Iterator[dict[str, Any]]:
        """A run of an agent whose tools are partly the client's (:mod:`flightdeck.agents.resumable`): with
        ``file_search`` the spec's agent and its tools (or, without ``agents.tools``, a search of the index), else
        the agent model alone, plus the client's function ``tools``. Starts a run of ``question`` (``history``: the
        earlier user and assistant turns), or goes on with ``resume`` (a hand-back's ``state``) and the ``output``
        of the client's call.

        Events: ``{"event": "step", "step", "sources", "search"}`` as each step ends (``search``: a step of a file
        search), then ``{"event": "handback", "handback"}`` (a :class:`~flightdeck.agents.resumable.HandBack` whose
        ``state`` resumes the run) or ``{"event": "run", "run"}``, with the ``trace_id`` of this request's trace
        (``operation``) and the ``usage`` of this request. Closing the iterator stops the run at its next step."""
        from flightdeck.agents.resumable import ResumableRun

        self.authorize(principal, Permission.QUERY)
        if resume is not None:
            tools, file_search = list(resume["tools"]), bool(resume["file_search"])
            instructions = str(resume["instructions"])
        if file_search:
            self._unscoped(principal, "search through an agent (its searches are not limited yet)")
        project = self.project
        loop, searches = self._client_agent(project, tools, file_search, instructions, self.actor(principal))
        if resume is not None:
            run = ResumableRun.load(loop, resume["run"])
        else:
            if not question.strip():
                raise ValueError("input: no user message to answer")
            # the newest turns, about a quarter of the token budget (4 characters a token), as the agent's memory does
            keep, room = [], project.spec.agents.agent.budget.max_tokens
            for turn in reversed(history):
                room -= len(str(turn.get("content") or ""))
                if room < 0:
                    break
                keep.append(turn)
            run = ResumableRun.start(loop, question, history=keep[::-1])
        setup = {"tools": list(tools), "file_search": file_search, "instructions": instructions}
        return self._agent_events(principal, project, run, setup, searches, output, operation, request_id)

    def _client_agent(self, project: Project, tools: Sequence[Mapping[str, Any]], file_search: bool,
                      instructions: str, actor: str) -> tuple[Any, set[str]]:
        from flightdeck.agents.resumable import with_client_tools
        from flightdeck.agents.runtime import AgentLoop
        from flightdeck.agents.tools.memory import memory_tools
        from flightdeck.agents.tools.search import SearchTool

        settings = project.spec.agents.agent
        if not file_search:
            return with_client_tools(None, tools, model=project.assembly.agent_model, budget=settings.budget,
                                     instructions=instructions), set()
        if project.spec.agents.tools:
            base = project.agent
        else:  # no agents.tools in the spec: the agent searches the index with the server's search

            def search(query: str, k: int | None = None, where: dict[str, Any] | None = None) -> SearchResult:
                with self._lock:
                    return project.search(query, k=k, where=where)

            base = AgentLoop(project.assembly.agent_model, [SearchTool(search=search)], budget=settings.budget,
                             instructions=settings.instructions)
        if project.spec.agents.memory:
            base = base.with_tools(memory_tools(project.agent_memory, actor))
        searches = {name for name, tool in base.tools.items() if isinstance(tool, SearchTool)}
        return with_client_tools(base, tools, instructions=instructions), searches

    def _agent_events(self, principal: Principal, project: Project, run: Any, setup: dict[str, Any],
                      searches: set[str], output: str | None, operation: str,
                      request_id: str | None) -> Iterator[dict[str, Any]]:
        from flightdeck.agents.resumable import HandBack
        from flightdeck.agents.runtime import AgentStep

        before = dict(run.progress.usage)
        steps: list[Any] = []
        retrieved: list[dict[str, Any]] = []
        final: Any = None
        error: str | None = None
        try:
            for item in run.steps(output=output):
                if not isinstance(item, AgentStep):
                    final = item
                    continue
                steps.append(item)
                sources = [run.source(n) for n in item.sources]
                retrieved += [{"chunk_id": s["chunk_id"], "score": s.get("score")} for s in sources
                              if s.get("chunk_id")]
                yield {"event": "step", "step": item, "sources": sources, "search": item.tool in searches}
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
            raise
        finally:
            usage = {k: run.progress.usage.get(k, 0) - before.get(k, 0) for k in run.progress.usage}
            trace = Trace(new_trace_id(), operation, run.progress.question[:4000], key_id=principal.key_id,
                          request_id=request_id, generator=str(getattr(run.loop.model, "model_id", "")),
                          index_version=project.assembly.index_version or project.workspace.get_state(CURRENT_INDEX))
            trace.details.update(usage=usage, retrieved=retrieved, steps=[s.to_dict() for s in steps])
            status = "stopped" if final is None else "requires_action" if isinstance(final, HandBack) \
                else final.status
            trace.details["status"] = status
            if error:
                trace.details["error"] = error
            if isinstance(final, HandBack):
                final.state = {**setup, "run": final.state}
                trace.details["handed_back"] = {"call_id": final.call_id, "name": final.name,
                                                "arguments": final.arguments}
            elif final is not None:
                trace.answer, trace.found = final.answer, final.status == "answered" and bool(final.answer)
                # every source the answer cites: a chunk (what lineage follows), a table, a page, a tool's record
                trace.details["citations"] = [{k: c[k] for k in _CITATION_KEYS if k in c} for c in final.citations]
            if project.release is not None:
                trace.details["release"] = project.release.id
            if self.keys is not None:
                self.limiter.spend_tokens(principal.key_id, sum(usage.values()))
            self.metrics.observe_answer(trace.found, trace.generator or "", usage)
            if self.settings.store_traces:
                self.traces.record(trace)
            self.audit.append(self.actor(principal), "agent.run", trace.id, {
                "operation": operation, "question": trace.question, "status": status, "steps": len(steps),
                "tools": [s.tool for s in steps if s.tool]}, redact=True)
        kind = "handback" if isinstance(final, HandBack) else "run"
        yield {"event": kind, kind: final, "trace_id": trace.id, "usage": usage}

    def embed(self, principal: Principal, texts: list[str]) -> tuple[list[list[float]], int]:
        """Vectors of ``texts`` from the embedder that built the index (as a query would be embedded: the
        vectors are comparable with the index's), and how many tokens of the embedder's tokenizer they hold."""
        self.authorize(principal, Permission.QUERY)
        with self._lock:
            embedder = self.project.embedder
            vectors = [[float(x) for x in embedder.embed_query(t)] for t in texts]
            return vectors, sum(self.project.tokenizer.count_batch(texts))

    def add_document(self, principal: Principal, name: str, content: bytes) -> dict[str, Any]:
        """Ingest an uploaded file (``name`` its file name); it is searchable when this returns."""
        self.authorize(principal, Permission.DOCUMENTS_WRITE)
        self._unscoped(principal, "upload documents")
        return self.uploads.add(name, content, actor=self.actor(principal))

    def document(self, principal: Principal, document_id: str) -> dict[str, Any]:
        self.authorize(principal, Permission.DOCUMENTS_READ)
        record = self.uploads.get(document_id)
        if not AccessPolicy.admits(self.scope(principal, Permission.DOCUMENTS_READ), record.get("metadata") or {}):
            raise DocumentNotFound(f"no document {document_id!r} in the current dataset")  # outside: not there
        return record

    def delete_document(self, principal: Principal, document_id: str) -> dict[str, Any]:
        self.authorize(principal, Permission.DOCUMENTS_WRITE)
        self._unscoped(principal, "delete documents")
        return self.uploads.delete(document_id, actor=self.actor(principal))

    def audit_entries(self, principal: Principal, *, since: str | None = None, actor: str | None = None,
                      action: str | None = None, limit: int = 100) -> dict[str, Any]:
        """Entries of the audit log, oldest first: the newest ``limit`` since ``since`` (a date such as 2026-12-01 or
        a duration back from now such as 7d), by ``actor`` and ``action`` (``release.*``: a prefix)."""
        self.authorize(principal, Permission.AUDIT_READ)
        if not 1 <= limit <= 1000:
            raise ValueError(f"limit: 1 to 1000, got {limit}")
        start = parse_since(since) if since else None
        found = self.audit.entries(since=start, actor=actor, action=action, limit=limit)
        head = self.audit.head()
        return {"entries": [e.to_dict() for e in found],
                "head": None if head is None else {"seq": head.seq, "hash": head.hash}}

    # releases (governance/releases.py): the workspace's, whichever one this server answers with ------------------
    def _release_actor(self, principal: Principal) -> Actor:
        return Actor(self.actor(principal), principal.role)

    def releases(self, principal: Principal, stage: str | None = None) -> dict[str, Any]:
        self.authorize(principal, Permission.RELEASES_READ)
        found = self.base.releases.list(stage)
        return {"releases": [r.to_dict() for r in found],
                "serving": None if self.release is None else self.release.to_dict()}

    def release_detail(self, principal: Principal, ref: str) -> dict[str, Any]:
        """A release with its manifest, history, what promotion still needs and whether it is intact."""
        self.authorize(principal, Permission.RELEASES_READ)
        releases = self.base.releases
        release = releases.get(ref)
        problems = releases.verify(release)
        return {"release": release.to_dict(), "manifest": releases.manifest(release),
                "events": [e.to_dict() for e in releases.events(release)],
                "policy": releases.check_policy(release).to_dict(), "intact": not problems, "problems": problems}

    def review_release(self, principal: Principal, ref: str, verdict: str, comment: str | None) -> dict[str, Any]:
        """Approve or reject ``ref`` as the caller (an approver or admin key; the policy decides what counts)."""
        self.authorize(principal, Permission.RELEASES_APPROVE)
        releases = self.base.releases
        event = releases.review(ref, self._release_actor(principal), verdict, comment)
        release = releases.get(event.release_id)
        return {"event": event.to_dict(), "release": release.to_dict(),
                "policy": releases.check_policy(release).to_dict()}

    def promote_release(self, principal: Principal, ref: str, stage: str = "production",
                        override_reason: str | None = None, comment: str | None = None) -> dict[str, Any]:
        """Promote ``ref`` when governance.approvals allows it (an admin key); a server following the stage
        switches to it without a restart."""
        self.authorize(principal, Permission.RELEASES_PROMOTE)
        release = self.base.releases.promote(ref, self._release_actor(principal), stage,
                                             override_reason=override_reason, comment=comment,
                                             model_files=self.base.release_model_problems)
        return {"release": release.to_dict()}

    def rollback_release(self, principal: Principal, to: str | None = None,
                         comment: str | None = None) -> dict[str, Any]:
        self.authorize(principal, Permission.RELEASES_PROMOTE)
        release = self.base.releases.rollback(self._release_actor(principal), to, comment,
                                              model_files=self.base.release_model_problems)
        return {"release": release.to_dict()}

    def lineage(self, principal: Principal, ref: str) -> dict[str, Any]:
        """Where an answer (trace id), a release or a chunk came from, down to the source files."""
        self.authorize(principal, Permission.RELEASES_READ)
        return self.base.lineage_graph(ref).to_dict()

    def audit_verify(self, principal: Principal) -> dict[str, Any]:
        """The audit log checked from its first entry (:meth:`~flightdeck.workspace.audit.AuditLog.verify`)."""
        self.authorize(principal, Permission.AUDIT_READ)
        return self.audit.verify().to_dict()

    @cached_property
    def batches(self) -> BatchJobs:
        """Batch jobs (``POST /v1/batch``), answered one question at a time by a worker thread; jobs a stopped
        server left unfinished resume when this is first read (``flightdeck serve`` reads it at start)."""
        return BatchJobs(self.project.workspace.root, self._batch_answer)

    def _batch_answer(self, question: str) -> dict[str, Any]:
        events = self._answer_events(BATCH, question, None, None, None, "batch", question)
        return [e for e in events if e["event"] == "answer"][-1]["answer"]

    def submit_batch(self, principal: Principal, lines: list[dict[str, Any]] | bytes) -> dict[str, Any]:
        """Queue a batch of questions (JSONL bytes or a list of ``{"question", "id"?}``); its status."""
        self.authorize(principal, Permission.QUERY)
        self._unscoped(principal, "run batch jobs (their answers are not limited yet)")
        return self.batches.status(self.batches.submit(lines, owner=principal.key_id))

    def batch(self, principal: Principal, job_id: str) -> dict[str, Any]:
        """A batch job's status: a key reads its own jobs, an admin any."""
        self.check(principal, Permission.QUERY)
        return self.batches.status(job_id, owner=None if principal.role is Role.ADMIN else principal.key_id)

    def batch_results(self, principal: Principal, job_id: str) -> Path:
        self.check(principal, Permission.QUERY)
        return self.batches.results(job_id, owner=None if principal.role is Role.ADMIN else principal.key_id)

    def models(self) -> dict[str, str]:
        """What answers (the generator) and what embeds (the embedder), by id."""
        return {"generator": self.generator_id, "embedder": self.project.embedder.model_id}


def _source(hit: Any) -> dict[str, Any]:
    return {"chunk_id": hit.chunk_id, "document_id": hit.document_id, "source_uri": hit.source_uri,
            "title": hit.title, "heading": hit.heading, "score": round(hit.score, 6)}
