"""A scripted model for tests of the agent loop: the fake of the agent model (``complete_json``).

:class:`ScriptedAgentModel` replies with the actions it is given, in order (dicts are written as JSON, strings as
they are, so a test can hand it a reply that does not parse), and keeps every request it received — the messages
and the JSON schema the loop held it to — for the test to look at. A real model's part (does it follow the
schema?) is tested with the packaged GGUF model; this fake tests the loop's own logic.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from flightdeck.models.generators.base import Completion

__all__ = ["ScriptedAgentModel"]


@dataclass
class ScriptedAgentModel:
    """Replies ``replies`` one per call; ``finish_reasons`` (by reply index) fakes a cut reply (``length``)."""

    replies: Sequence[Mapping[str, Any] | str]
    model_id: str = "scripted"
    tokens_per_reply: int = 10
    finish_reasons: Mapping[int, str] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)

    summaries: list[str] = field(default_factory=list)  # what complete() was asked to summarise

    def complete(self, messages: list[dict[str, str]], *, max_tokens: int | None = None,
                 temperature: float | None = None, stop: list[str] | None = None) -> Completion:
        """A plain completion (conversation summaries): the first words of what it was given."""
        self.summaries.append(messages[-1]["content"])
        return Completion("summary: " + " ".join(messages[-1]["content"].split()[:12]), 10, 10, "stop", 1.0)

    def add(self, *replies: Mapping[str, Any] | str) -> None:
        """More replies at the end of the script (a test that talks to a running server adds them as it goes)."""
        self.replies = [*self.replies, *replies]

    def complete_json(self, messages: list[dict[str, str]], schema: Mapping[str, Any], *,
                      max_tokens: int | None = None) -> Completion:
        n = len(self.requests)
        self.requests.append({"messages": [dict(m) for m in messages], "schema": dict(schema),
                              "max_tokens": max_tokens})
        if n >= len(self.replies):
            raise AssertionError(f"the loop asked for reply {n + 1}; the script has {len(self.replies)}")
        reply = self.replies[n]
        text = reply if isinstance(reply, str) else json.dumps(reply)
        prompt = sum(len(m["content"]) for m in messages) // 4
        return Completion(text, prompt, self.tokens_per_reply, self.finish_reasons.get(n, "stop"), 1.0)
