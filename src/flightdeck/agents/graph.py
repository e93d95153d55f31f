"""A flightdeck agent as a LangGraph graph, and pipeline steps as LangGraph nodes (checklist 6.3).

**The agent as a graph.** :func:`agent_graph` turns an :class:`~flightdeck.agents.runtime.AgentLoop` into a
``StateGraph`` whose nodes are the loop's own pieces, so a graph run and ``AgentLoop.run`` give the same steps,
sources and citations for the same model:

- ``start`` opens the run (the system prompt, the conversation's earlier turns, the question);
- ``plan`` is one model turn held to the action schema (a tool call, an answer, or a reply that is not an action,
  which the model is told about and which costs a step), after checking the token and time budgets;
- ``tool`` runs the chosen tool (the project's search is the retrieve step: a tool like the others) and appends its
  result as fenced, numbered ``<source>`` blocks: untrusted data;
- ``answer`` writes the run (``state["run"]``, an ``AgentRun`` as a dict: read it back with :func:`agent_run`).

Edges: ``plan`` → ``tool`` (a call), ``answer`` (an answer, a failure, a spent budget) or ``plan`` again (a reply
that was not an action); ``tool`` → ``plan``, or ``answer`` when the tool failed. The state is plain data (the
messages, the numbered sources, the steps as dicts, the budget used), so any LangGraph checkpointer keeps it; the
time budget counts the seconds spent in the nodes, so a run resumed later is not charged for the pause.

**Checkpoints.** With a checkpointer every node's result is kept under the ``thread_id`` of the call's config:
a run stopped after a tool step (``interrupt_after=["tool"]``, a crash, a restart) goes on from there with
``graph.invoke(None, config)``, in this process or another, and the tool is not called again.
:func:`workspace_checkpointer` keeps them in a SQLite file in the workspace, :func:`postgres_checkpointer` in
PostgreSQL.

**Steps as nodes.** :func:`step_node` makes a pipeline :class:`~flightdeck.core.steps.Step` (ingest, embed,
index…) a node: it runs the step for the ``run_id`` in the graph state and records its
:class:`~flightdeck.core.steps.StepRecord` (as a dict) under ``state["step_results"][step.name]``;
:func:`steps_graph` chains steps in order. Unlike :class:`~flightdeck.pipeline.runner.Runner` it neither skips
unchanged steps nor writes the workspace's run records: the graph (and its checkpoints) is the record. A step that
raises fails the node, and the graph stops there (with a checkpointer, resuming runs that step again).

Needs langgraph: ``pip install 'flightdeck[langgraph]'`` (the savers: ``langgraph-checkpoint-sqlite``,
``langgraph-checkpoint-postgres``); this module imports them only when a graph or a saver is built.
"""

from __future__ import annotations

import copy
import os
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypedDict
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from flightdeck.agents.runtime import AgentError, AgentLoop, AgentProgress, AgentRun, AgentStep
from flightdeck.core import NullReporter, Reporter, Step, StepRecord
from flightdeck.errors import FlightdeckError
from flightdeck.registry.lookup import optional_import

if TYPE_CHECKING:
    from langgraph.checkpoint.base import BaseCheckpointSaver
    from langgraph.graph.state import CompiledStateGraph

    from flightdeck.workspace import Workspace

__all__ = ["AgentState", "StepState", "agent_graph", "agent_run", "postgres_checkpointer", "step_node",
           "steps_graph", "workspace_checkpointer", "CHECKPOINT_FILE", "LanggraphConfig", "LanggraphRunner"]

_EXTRA = "langgraph"
#: the file in the workspace that :func:`workspace_checkpointer` keeps the checkpoints in
CHECKPOINT_FILE = "agent_checkpoints.db"


def _graph_module() -> Any:
    return optional_import("langgraph.graph", _EXTRA, "a flightdeck agent as a LangGraph graph")


# ------------------------------------------------------------------------------------------------- the agent graph

class AgentInput(TypedDict, total=False):
    """What a run of the graph starts from: the question and the conversation's earlier turns."""

    question: str
    history: list[dict[str, str]]


class AgentState(TypedDict, total=False):
    """The graph's state: an :class:`~flightdeck.agents.runtime.AgentProgress` as plain data, the seconds its nodes
    took (the time budget) and, once answered, the run."""

    question: str
    history: list[dict[str, str]]
    messages: list[dict[str, str]]
    steps: list[dict[str, Any]]  # AgentStep.to_dict()
    sources: list[dict[str, Any]]  # numbered from 1
    seen: dict[str, int]  # a call's key -> the step that ran it
    usage: dict[str, int]
    calls: int
    answer_now: bool
    pending: dict[str, Any] | None  # the tool call that plan chose, for tool
    ended: dict[str, Any] | None  # {status, answer, cites, reason}
    seconds: float
    run: dict[str, Any] | None  # AgentRun.to_dict(), written by answer


def _progress(state: Mapping[str, Any]) -> AgentProgress:
    """The loop's progress from the graph state (a copy: the nodes never change the state in place)."""
    data = copy.deepcopy({k: state.get(k) for k in ("messages", "steps", "sources", "seen", "usage", "pending",
                                                     "ended")})
    return AgentProgress(str(state.get("question") or ""), list(data["messages"] or []),
                         [AgentStep(**s) for s in data["steps"] or []], list(data["sources"] or []),
                         dict(data["seen"] or {}), dict(data["usage"] or {}), int(state.get("calls") or 0),
                         bool(state.get("answer_now")), data["pending"], data["ended"])


def _update(progress: AgentProgress) -> dict[str, Any]:
    """The state update that records ``progress``."""
    return {"messages": progress.messages, "steps": [s.to_dict() for s in progress.steps],
            "sources": progress.sources, "seen": progress.seen, "usage": progress.usage, "calls": progress.calls,
            "answer_now": progress.answer_now, "pending": progress.pending, "ended": progress.ended}


def agent_graph(loop: AgentLoop, *, checkpointer: Any = None) -> CompiledStateGraph:
    """``loop`` as a compiled LangGraph graph (nodes ``start``, ``plan``, ``tool``, ``answer``; see the module's
    docstring). Invoke it with ``{"question": ..., "history": [...]}`` and, with a ``checkpointer``, a config
    naming the ``thread_id``; :func:`agent_run` reads the :class:`~flightdeck.agents.runtime.AgentRun` from the
    result."""
    lg = _graph_module()

    def start(state: AgentState) -> dict[str, Any]:
        progress = loop.start(str(state.get("question") or ""), history=list(state.get("history") or []))
        return {"question": progress.question, **_update(progress), "seconds": 0.0, "run": None}

    def plan(state: AgentState) -> dict[str, Any]:
        t0 = loop.clock()
        progress = _progress(state)
        reason = loop.out_of_budget(progress, float(state.get("seconds") or 0.0))
        if reason is not None:
            progress.end("budget_exhausted", reason=reason)
        else:
            loop.turn(progress)
        return {**_update(progress), "seconds": float(state.get("seconds") or 0.0) + loop.clock() - t0}

    def tool(state: AgentState) -> dict[str, Any]:
        t0 = loop.clock()
        progress = _progress(state)
        loop.act(progress)
        return {**_update(progress), "seconds": float(state.get("seconds") or 0.0) + loop.clock() - t0}

    def answer(state: AgentState) -> dict[str, Any]:
        run = loop.finish(_progress(state), round(float(state.get("seconds") or 0.0) * 1000, 3))
        return {"run": run.to_dict()}

    def after_plan(state: AgentState) -> str:
        return "answer" if state.get("ended") else "tool" if state.get("pending") else "plan"

    def after_tool(state: AgentState) -> str:
        return "answer" if state.get("ended") else "plan"

    builder = lg.StateGraph(AgentState, input_schema=AgentInput)
    builder.add_node("start", start)
    builder.add_node("plan", plan)
    builder.add_node("tool", tool)
    builder.add_node("answer", answer)
    builder.add_edge(lg.START, "start")
    builder.add_edge("start", "plan")
    builder.add_conditional_edges("plan", after_plan, ["tool", "answer", "plan"])
    builder.add_conditional_edges("tool", after_tool, ["plan", "answer"])
    builder.add_edge("answer", lg.END)
    graph = builder.compile(checkpointer=checkpointer, name="flightdeck_agent")
    # each tool call is two node runs (plan, tool); an invalid reply one; then a last turn and the answer
    return graph.with_config(recursion_limit=2 * loop.budget.max_steps + 8)


def agent_run(state: Mapping[str, Any]) -> AgentRun:
    """The :class:`~flightdeck.agents.runtime.AgentRun` in an agent graph's final state (what ``invoke`` returned,
    or ``graph.get_state(config).values``)."""
    data = state.get("run")
    if not data:
        raise AgentError("the agent graph has not answered yet: it was interrupted or has not run (resume it with "
                         "graph.invoke(None, config))")
    fields = {k: copy.deepcopy(v) for k, v in data.items() if k != "tool_calls"}
    fields["steps"] = [AgentStep(**s) for s in fields["steps"]]
    return AgentRun(**fields)


# ------------------------------------------------------------------------------------------------- checkpointers

def workspace_checkpointer(workspace_root: Workspace | str | os.PathLike[str]) -> BaseCheckpointSaver:
    """LangGraph's SQLite saver over ``CHECKPOINT_FILE`` in the workspace (a :class:`~flightdeck.workspace.Workspace`
    or its folder, ``.flightdeck/``). The saver holds an open connection: ``saver.conn.close()`` when done."""
    saver_module = optional_import("langgraph.checkpoint.sqlite", _EXTRA, "agent checkpoints in the workspace",
                                   install="pip install 'flightdeck[langgraph]' (langgraph-checkpoint-sqlite)")
    root = Path(workspace_root if isinstance(workspace_root, str | os.PathLike) else workspace_root.root)
    if not root.is_dir():
        raise FlightdeckError(f"{root}: not a workspace folder (it does not exist); open the project first")
    # check_same_thread=False: the saver serialises its own use of the connection with a lock
    conn = sqlite3.connect(root / CHECKPOINT_FILE, check_same_thread=False)
    saver = saver_module.SqliteSaver(conn)
    saver.setup()
    return saver


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def postgres_checkpointer(url: str) -> BaseCheckpointSaver:
    """LangGraph's PostgreSQL saver on ``url`` (``postgresql://user@host:5432/db``; a SQLAlchemy URL such as
    ``postgresql+psycopg://…`` is read the same; ``?options=-csearch_path%3Dagents`` puts its tables in a schema of
    their own), its tables created or migrated. The saver holds an open connection: ``saver.conn.close()`` when done.
    The saver keeps a graph's text fields in JSONB, which cannot hold a NUL character: a question with one fails
    there (PostgreSQL's ``UntranslatableCharacter``); the SQLite saver keeps it."""
    saver_module = optional_import("langgraph.checkpoint.postgres", _EXTRA, "agent checkpoints in PostgreSQL",
                                   install="pip install 'flightdeck[langgraph]' (langgraph-checkpoint-postgres)")
    psycopg = optional_import("psycopg", _EXTRA, "agent checkpoints in PostgreSQL")
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.split("+")[0] not in ("postgresql", "postgres"):
        raise FlightdeckError(f"postgres checkpointer: {_redacted(url)!r} is not a PostgreSQL URL "
                              "(postgresql://user@host:5432/db)")
    conninfo = "postgresql://" + rest
    try:
        conn = psycopg.Connection.connect(conninfo, autocommit=True, prepare_threshold=0,
                                          row_factory=psycopg.rows.dict_row)
    except psycopg.OperationalError as exc:
        raise FlightdeckError(f"postgres checkpointer: cannot connect to {_redacted(url)}: {exc}") from exc
    saver = saver_module.PostgresSaver(conn)
    try:
        saver.setup()
    except Exception:
        conn.close()
        raise
    return saver


# ------------------------------------------------------------------------------------------------- steps as nodes

def _merge(left: dict[str, Any] | None, right: dict[str, Any] | None) -> dict[str, Any]:
    """Each node's record added to the others (a step run again replaces its record)."""
    return {**(left or {}), **(right or {})}


class StepState(TypedDict, total=False):
    """What step nodes read and write: the ``run_id`` the steps run under, and each step's record by name."""

    run_id: str
    step_results: Annotated[dict[str, dict[str, Any]], _merge]


def step_node(step: Step, *, reporter: Reporter | None = None) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    """A LangGraph node that runs ``step`` (``plan`` for its hashes, then ``run``) under the graph state's
    ``run_id`` and records its :class:`~flightdeck.core.steps.StepRecord`, as a dict, in
    ``state["step_results"][step.name]``. ``reporter`` hears ``step_start`` and ``step_end`` as from the runner,
    and whatever the step reports. The caller holds the workspace's writer lock, as ``Project.run`` does."""
    out = reporter or NullReporter()

    def node(state: Mapping[str, Any]) -> dict[str, Any]:
        run_id = state.get("run_id")
        if not isinstance(run_id, str) or not run_id:
            raise FlightdeckError(f"step {step.name}: the graph state has no run_id; invoke the graph with "
                                  "{'run_id': ...} (a new id per run, e.g. uuid.uuid4().hex)")
        t0 = time.time()
        out.event("step_start", step=step.name)
        try:
            input_hash, config_hash = step.plan()
            result = step.run(run_id, out)
        except BaseException as exc:
            out.event("step_end", step=step.name, status="failed", error=str(exc), counts={})
            raise
        seconds = time.time() - t0
        out.event("step_end", step=step.name, status="succeeded", seconds=round(seconds, 3), counts=result.counts)
        record = StepRecord(step.name, "succeeded", seconds, input_hash, config_hash, result.output_hash,
                            dict(result.counts))
        return {"step_results": {step.name: asdict(record)}}

    node.__name__ = f"step_{step.name}"
    node.__qualname__ = node.__name__
    return node


def steps_graph(steps: Sequence[Step], *, reporter: Reporter | None = None,
                checkpointer: Any = None) -> CompiledStateGraph:
    """``steps`` as a LangGraph graph, one node per step (named like the step), run in order. Invoke it with
    ``{"run_id": ...}``; the result's ``step_results`` holds each step's record."""
    if not steps:
        raise FlightdeckError("steps_graph: no steps to run")
    names = [s.name for s in steps]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise FlightdeckError(f"steps_graph: two steps are named {', '.join(duplicated)}; a node needs a name of "
                              "its own")
    lg = _graph_module()
    builder = lg.StateGraph(StepState)
    previous = lg.START
    for step in steps:
        builder.add_node(step.name, step_node(step, reporter=reporter))
        builder.add_edge(previous, step.name)
        previous = step.name
    builder.add_edge(previous, lg.END)
    return builder.compile(checkpointer=checkpointer, name="flightdeck_steps")


# ------------------------------------------------------------------------------------------------- as a provider

class LanggraphConfig(BaseModel):
    """``agents.orchestration: [{provider: langgraph, ...}]``: the spec's agent runs as a LangGraph graph."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)
    checkpoints: str = Field("workspace", repr=False, description="workspace (a SQLite file in the workspace) or a "
                                                                  "PostgreSQL URL (postgresql://user@host/db)")

    @field_validator("checkpoints")
    @classmethod
    def _where(cls, value: str) -> str:
        if value != "workspace" and value.partition("://")[0].split("+")[0] not in ("postgresql", "postgres"):
            raise ValueError("checkpoints: workspace, or a PostgreSQL URL such as postgresql://user@host:5432/db")
        return value


class LanggraphRunner:
    """Runs an :class:`~flightdeck.agents.runtime.AgentLoop` as its LangGraph graph, each run's state checkpointed
    under its thread (a conversation's id, else the run's own), so an interrupted run can be resumed."""

    def __init__(self, config: LanggraphConfig | None = None, *, workspace: Any) -> None:
        self.config = config or LanggraphConfig()
        self.workspace = workspace
        self._saver: Any = None

    def saver(self) -> Any:
        if self._saver is None:
            self._saver = (workspace_checkpointer(self.workspace) if self.config.checkpoints == "workspace"
                           else postgres_checkpointer(self.config.checkpoints))
        return self._saver

    def run(self, loop: AgentLoop, question: str, *, history: Sequence[Mapping[str, str]] = (),
            thread_id: str, on_step: Callable[[AgentStep], None] | None = None) -> AgentRun:
        """One run of ``loop`` on ``question`` as a graph, checkpointed under ``thread_id``; ``on_step`` hears
        each step as its node ends."""
        graph = agent_graph(loop, checkpointer=self.saver())
        config = {"configurable": {"thread_id": thread_id}}
        told = 0
        for update in graph.stream({"question": question, "history": list(history)}, config,
                                   stream_mode="values"):
            steps = update.get("steps") or []
            if on_step is not None:
                for step in steps[told:]:
                    on_step(AgentStep(**step))
            told = max(told, len(steps))
        return agent_run(graph.get_state(config).values)

    def close(self) -> None:
        if self._saver is not None and getattr(self._saver, "conn", None) is not None:
            self._saver.conn.close()
            self._saver = None
