"""An agent run that hands the client's tool calls back (checklist 3.2, 3.3: the Responses API with ``file_search``
and function tools, the Assistants API's ``requires_action``).

The run's tools are the server's (the spec's agent: file search, SQL…) and the client's function tools, which only
the client can run. The loop is :class:`~flightdeck.agents.runtime.AgentLoop`'s, turn by turn: a server tool runs
here; a call of a client tool stops the run and hands the call back (:class:`HandBack`, with the run's state as
plain JSON). The client runs its tool and sends the output; :meth:`ResumableRun.steps` goes on from that state with
the output as the tool's result — a numbered, fenced ``<source>`` like any tool's, so it is untrusted data and the
answer may cite it — with the same steps, sources and budget as if the tool had answered inside the loop.

::

    run = ResumableRun.start(loop, "What is the weather in Lyon?")
    *steps, last = run.steps()            # last: a HandBack (call get_weather) or the AgentRun
    state = last.state                    # kept by the caller until the output comes
    run = ResumableRun.load(loop, state)  # the same loop: server tools and the client's
    *steps, last = run.steps(output="sunny, 21 C")
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from flightdeck.agents.runtime import AgentBudget, AgentLoop, AgentProgress, AgentRun, AgentStep, _args_key
from flightdeck.agents.tool_calls import client_tools
from flightdeck.agents.tools.base import ToolResult, ToolSpec

__all__ = ["ResumableRun", "HandBack", "HandedBackTool", "with_client_tools"]


class HandedBackTool:
    """A client's tool in the loop: the server never runs it; its result is the output the client sent back."""

    def __init__(self, spec: ToolSpec) -> None:
        self.spec = spec
        self.output: str | None = None

    def call(self, arguments: Mapping[str, Any]) -> ToolResult:
        if self.output is None:  # only reached when a run is resumed without the output: a bug of the caller
            return ToolResult.refused("this tool runs on the client, and no output came back")
        return ToolResult(content=self.output)


@dataclass
class HandBack:
    """A run stopped on a call of the client's tool ``name``: the call (``call_id``, ``arguments``) and the run's
    ``state`` (JSON) to resume it with the tool's output."""

    call_id: str
    name: str
    arguments: dict[str, Any]
    state: dict[str, Any]
    usage: dict[str, int]


def with_client_tools(base: AgentLoop | None, tools: Sequence[Mapping[str, Any]], *, model: Any = None,
                      budget: AgentBudget | None = None, instructions: str = "") -> AgentLoop:
    """An agent with ``base``'s tools, model and budget (None: no server tools, thinking with ``model`` under
    ``budget``), the client's ``tools`` (OpenAI function tools, chat shape) and ``instructions`` after ``base``'s
    own."""
    client = [HandedBackTool(t.spec) for t in client_tools(tools)]
    server = dict(base.tools) if base is not None else {}
    for i, tool in enumerate(client):
        if tool.spec.name in server:
            raise ValueError(f"tools[{i}]: {tool.spec.name!r} is the name of one of the server's tools; "
                             "give the function another name")
    lead = "\n\n".join(p for p in ((base.instructions if base else ""), instructions.strip()) if p)
    if base is None:
        return AgentLoop(model, client, budget=budget, instructions=lead)
    return AgentLoop(base.model, [*server.values(), *client], budget=base.budget, instructions=lead,
                     clock=base.clock)


class ResumableRun:
    """A run of ``loop`` that stops at each call of a :class:`HandedBackTool` and goes on once its output comes."""

    def __init__(self, loop: AgentLoop, progress: AgentProgress, spent_ms: float = 0.0,
                 waiting: str | None = None) -> None:
        self.loop = loop
        self.progress = progress
        self.spent_ms = spent_ms
        self.waiting = waiting  # the call id whose output the run waits for

    @classmethod
    def start(cls, loop: AgentLoop, question: str, *,
              history: Sequence[Mapping[str, str]] = ()) -> ResumableRun:
        return cls(loop, loop.start(question, history=history))

    @classmethod
    def load(cls, loop: AgentLoop, state: Mapping[str, Any]) -> ResumableRun:
        """The run that :meth:`save` kept, over ``loop`` (built with the same tools)."""
        raw = dict(state["progress"])
        progress = AgentProgress(**{**raw, "steps": [AgentStep(**s) for s in raw["steps"]]})
        return cls(loop, progress, float(state.get("spent_ms", 0.0)), state.get("waiting"))

    def save(self) -> dict[str, Any]:
        return {"progress": asdict(self.progress), "spent_ms": self.spent_ms, "waiting": self.waiting}

    def source(self, number: int) -> dict[str, Any]:
        """The source the observations numbered ``number``."""
        return {"number": number, **self.progress.sources[number - 1]}

    def steps(self, *, output: str | None = None) -> Iterator[AgentStep | HandBack | AgentRun]:
        """Each step as it ends, then a :class:`HandBack` (a call of the client's tool) or the
        :class:`~flightdeck.agents.runtime.AgentRun`. ``output``: the result of the call the run waits for."""
        loop, progress = self.loop, self.progress
        t0 = loop.clock()

        def spent() -> float:
            return self.spent_ms + (loop.clock() - t0) * 1000

        if self.waiting is not None:
            if output is None or progress.pending is None:
                raise ValueError(f"the run waits for the output of call {self.waiting}")
            name = str(progress.pending["action"]["tool"])
            tool = loop.tools.get(name)
            if not isinstance(tool, HandedBackTool):
                raise ValueError(f"the run waits for the output of {name}, which is not one of the client's tools now")
            tool.output = output
            self.waiting = None
            yield loop.act(progress)
        while progress.ended is None:
            reason = loop.out_of_budget(progress, spent() / 1000)
            if reason is not None:
                progress.end("budget_exhausted", reason=reason)
                break
            step = loop.turn(progress)
            if step is not None:
                yield step
                continue
            action = progress.pending["action"] if progress.pending else {}
            name, arguments = str(action.get("tool")), dict(action.get("arguments") or {})
            # a call made before is not handed back again: act() records it as a repeat, as for any tool
            if isinstance(loop.tools.get(name), HandedBackTool) and _args_key(name, arguments) not in progress.seen:
                self.waiting = "call_" + secrets.token_hex(12)
                self.spent_ms = spent()
                yield HandBack(self.waiting, name, arguments, self.save(), dict(progress.usage))
                return
            yield loop.act(progress)
        yield loop.finish(progress, round(spent(), 3))
