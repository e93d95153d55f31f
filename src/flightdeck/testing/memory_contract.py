"""The contract test every agent memory runs (DESIGN.md §3.1: one contract test class per category).

Subclass :class:`MemoryContract` and give the fixture ``make_memory``: a callable ``make_memory(summarize=None)``
that builds a memory over fresh, empty storage for this test (each call within one test may share it)::

    class TestBuiltinMemory(MemoryContract):
        @pytest.fixture
        def make_memory(self, tmp_path):
            ws = Workspace(tmp_path / ".flightdeck")
            return lambda summarize=None: BuiltinMemory(ws.engine, summarize=summarize)

The suite checks the order of appended messages, that one scope never sees another's conversations or facts
(also with the same conversation id, and with scope strings that look like patterns or prefixes), token-budget
trimming and summaries, clear and forget, that recall finds the right fact, unicode round trips, appends from
two threads at once, and that bad arguments are refused with :class:`AgentMemoryError`. Needs pytest.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from flightdeck.agents.memory.base import SUMMARY_PREFIX, AgentMemoryError, Fact, Memory, Message

__all__ = ["MemoryContract", "CONTRACT_FACTS"]


def _words(text: str) -> int:
    return len(text.split())


#: facts on distinct topics, and for each a query that names its topic in other words than the rest
CONTRACT_FACTS: list[tuple[str, str]] = [
    ("Miso the cat sleeps on the sofa and loves tuna", "cat tuna"),
    ("Home is in Lisbon, Portugal, near the river", "Lisbon river"),
    ("Favourite programming language: Rust, for its compiler", "Rust compiler"),
    ("Allergic to peanuts and sesame", "peanuts sesame allergy"),
    ("Laptop: ThinkPad X1 Carbon with 32 GB of RAM", "ThinkPad laptop"),
    ("Answers should be written in French", "French answers"),
]

UNICODE = {
    "scope": "ユーザー/émilie 🚀",
    "conversation": "会話-1 ∑",
    "texts": ["Grüße aus Zürich! 🏔", "مرحبا بالعالم", "東京 タワー は 高い", "e\u0301 ﬁ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 \u200d👩‍💻"],
}


class MemoryContract:
    """What every memory keeps (see the module's docstring)."""

    make_memory: Callable[..., Memory]

    # --- conversations --------------------------------------------------------------------------------------

    def test_history_gives_the_appended_messages_oldest_first(self, make_memory: Callable[..., Memory]) -> None:
        memory = make_memory()
        assert isinstance(memory, Memory)
        sent = [("user", "Hello, who are you?"), ("assistant", "An assistant."), ("user", "What can you do?"),
                ("assistant", "Answer questions from your documents.")]
        for role, content in sent:
            stored = memory.append("alice", "c1", role, content)
            assert (stored.role, stored.content) == (role, content)
        history = memory.history("alice", "c1")
        assert [(m.role, m.content) for m in history] == sent
        assert all(isinstance(m, Message) and not m.summary for m in history)
        assert [dict(m) for m in history] == [{"role": r, "content": c} for r, c in sent]  # what AgentLoop takes
        stamps = [m.at for m in history if m.at is not None]
        assert stamps == sorted(stamps)

    def test_unknown_conversations_and_scopes_are_empty(self, make_memory: Callable[..., Memory]) -> None:
        memory = make_memory()
        memory.append("alice", "c1", "user", "hi")
        assert memory.history("alice", "nope") == []
        assert memory.history("bob", "c1") == []
        assert memory.conversations("bob") == []
        assert memory.recall("bob", "hi") == []
        assert memory.forget("bob") == 0

    def test_conversations_lists_the_scope_s_conversation_ids(self, make_memory: Callable[..., Memory]) -> None:
        memory = make_memory()
        for conversation in ("c1", "c2", "c/3", "c*"):
            memory.append("alice", conversation, "user", f"in {conversation}")
        assert sorted(memory.conversations("alice")) == sorted(["c1", "c2", "c/3", "c*"])
        assert memory.history("alice", "c/3")[0].content == "in c/3"

    def test_one_scope_never_sees_another_s_conversations(self, make_memory: Callable[..., Memory]) -> None:
        memory = make_memory()
        scopes = ["alice", "alice*", "alice:c1", "ali", "alice/c1", "*", "alice?", "[a]lice", "ALICE", "alice "]
        for scope in scopes:
            memory.append(scope, "c1", "user", f"secret of {scope!r}")
        memory.append("alice", "c2", "user", "second conversation of alice")
        for scope in scopes:
            assert [m.content for m in memory.history(scope, "c1")] == [f"secret of {scope!r}"], scope
            if scope != "alice":
                assert memory.conversations(scope) == ["c1"], scope
        assert sorted(memory.conversations("alice")) == ["c1", "c2"]
        memory.clear("alice*")
        memory.clear("*", "c1")
        assert memory.history("alice*", "c1") == [] and memory.history("*", "c1") == []
        for scope in scopes:
            if scope not in ("alice*", "*"):
                assert [m.content for m in memory.history(scope, "c1")] == [f"secret of {scope!r}"], scope
        assert len(memory.history("alice", "c2")) == 1

    def test_one_scope_never_sees_another_s_facts(self, make_memory: Callable[..., Memory]) -> None:
        memory = make_memory()
        memory.remember("alice", "The launch code of alice is tangerine")
        memory.remember("alice*", "The launch code of alice-star is lemon")
        bob = memory.remember("bob", "The launch code of bob is papaya")
        for scope, word in (("alice", "tangerine"), ("alice*", "lemon"), ("bob", "papaya")):
            found = memory.recall(scope, "launch code", k=10)
            assert [f.text.split()[-1] for f in found] == [word], scope
        assert memory.recall("carol", "launch code", k=10) == []
        assert memory.forget("alice", bob.id) == 0  # bob's fact id, asked for under alice
        assert [f.id for f in memory.recall("bob", "launch code")] == [bob.id]
        assert memory.forget("alice*") == 1
        assert [f.text for f in memory.recall("alice", "launch code")] == ["The launch code of alice is tangerine"]
        assert len(memory.recall("bob", "launch code")) == 1

    def test_the_token_budget_trims_from_the_oldest_side(self, make_memory: Callable[..., Memory]) -> None:
        memory = make_memory()
        sent = [("user" if i % 2 == 0 else "assistant", f"message {i} here") for i in range(6)]  # 3 words each
        for role, content in sent:
            memory.append("alice", "c1", role, content)

        def kept(budget: int) -> list[str]:
            history = memory.history("alice", "c1", max_tokens=budget, count_tokens=_words)
            assert sum(_words(m.content) for m in history) <= budget
            assert not history or history[0].role == "user"  # an answer without its question is trimmed too
            return [m.content for m in history]

        assert kept(18) == [c for _, c in sent]
        assert kept(12) == [c for _, c in sent[2:]]
        assert kept(9) == [c for _, c in sent[4:]]  # 3 would fit, but the first of them is an answer
        assert kept(6) == [c for _, c in sent[4:]]
        assert kept(2) == []
        assert len(memory.history("alice", "c1", max_tokens=100_000)) == 6  # the default token count
        assert len(memory.history("alice", "c1")) == 6
        with pytest.raises(AgentMemoryError, match="max_tokens"):
            memory.history("alice", "c1", max_tokens=0)

    def test_a_summary_replaces_what_the_budget_trims(self, make_memory: Callable[..., Memory]) -> None:
        calls: list[list[Message]] = []

        def summarize(messages: list[Message]) -> str:
            calls.append(list(messages))
            return f"the user and the assistant exchanged {len(messages)} messages"

        memory = make_memory(summarize=summarize)
        sent = [("user" if i % 2 == 0 else "assistant", f"message number {i} of twelve") for i in range(12)]
        for role, content in sent:
            memory.append("alice", "c1", role, content)
        assert len(memory.history("alice", "c1", max_tokens=60, count_tokens=_words)) == 12
        assert calls == []  # nothing trimmed: nothing summarised
        history = memory.history("alice", "c1", max_tokens=30, count_tokens=_words)
        assert len(calls) == 1
        assert [m.content for m in calls[0]] == [c for _, c in sent[:9]]  # the trimmed part, oldest first
        summary, rest = history[0], history[1:]
        assert summary.summary and summary.role == "user"
        assert summary.content == SUMMARY_PREFIX + "the user and the assistant exchanged 9 messages"
        assert [m.content for m in rest] == [c for _, c in sent[9:]]
        assert [m.role for m in history] == ["user", "assistant", "user", "assistant"]  # roles alternate
        assert sum(_words(m.content) for m in history) <= 30

    def test_clear_deletes_one_conversation_or_all_of_the_scope(self, make_memory: Callable[..., Memory]) -> None:
        memory = make_memory()
        for conversation in ("c1", "c2", "c3"):
            memory.append("alice", conversation, "user", f"hello from {conversation}")
        fact = memory.remember("alice", "Prefers tea over coffee")
        memory.clear("alice", "c2")
        assert memory.history("alice", "c2") == []
        assert sorted(memory.conversations("alice")) == ["c1", "c3"]
        memory.clear("alice", "never-existed")
        memory.clear("alice")
        assert memory.conversations("alice") == []
        assert memory.history("alice", "c1") == [] and memory.history("alice", "c3") == []
        assert [f.id for f in memory.recall("alice", "tea coffee")] == [fact.id]  # clear keeps the facts
        memory.append("alice", "c1", "user", "a new start")
        assert [m.content for m in memory.history("alice", "c1")] == ["a new start"]

    # --- facts ----------------------------------------------------------------------------------------------

    def test_recall_finds_the_right_fact(self, make_memory: Callable[..., Memory]) -> None:
        memory = make_memory()
        assert memory.recall_by in ("similarity", "keyword")
        stored = {text: memory.remember("alice", text, {"n": i, "tags": ["x"]})
                  for i, (text, _) in enumerate(CONTRACT_FACTS)}
        assert len({f.id for f in stored.values()}) == len(CONTRACT_FACTS)
        for i, (text, query) in enumerate(CONTRACT_FACTS):
            found = memory.recall("alice", query, k=3)
            assert found and found[0].text == text, (query, [f.text for f in found])
            assert found[0].id == stored[text].id and found[0].metadata == {"n": i, "tags": ["x"]}
            assert len(found) <= 3
            assert [f.score for f in found] == sorted((f.score for f in found), reverse=True)
        assert len(memory.recall("alice", "cat", k=1)) == 1
        if memory.recall_by == "keyword":
            assert memory.recall("alice", "zeppelin") == []  # shares no word with any fact

    def test_forget_deletes_one_fact_or_all(self, make_memory: Callable[..., Memory]) -> None:
        memory = make_memory()
        facts = [memory.remember("alice", text) for text, _ in CONTRACT_FACTS[:3]]
        assert memory.forget("alice", facts[0].id) == 1
        assert memory.forget("alice", facts[0].id) == 0
        assert memory.forget("alice", "0123456789abcdef") == 0
        assert all(f.id != facts[0].id for f in memory.recall("alice", "cat tuna sofa", k=10))
        assert memory.recall("alice", "Rust compiler")[0].id == facts[2].id
        assert memory.forget("alice") == 2
        assert memory.recall("alice", "Rust compiler") == []
        again = memory.remember("alice", CONTRACT_FACTS[0][0])
        assert [f.id for f in memory.recall("alice", "cat tuna")] == [again.id]

    # --- any text -------------------------------------------------------------------------------------------

    def test_unicode_round_trips(self, make_memory: Callable[..., Memory]) -> None:
        memory = make_memory()
        scope, conversation, texts = UNICODE["scope"], UNICODE["conversation"], UNICODE["texts"]
        for i, text in enumerate(texts):
            memory.append(scope, conversation, "user" if i % 2 == 0 else "assistant", text)
        assert [m.content for m in memory.history(scope, conversation)] == texts
        assert memory.conversations(scope) == [conversation]
        fact = memory.remember(scope, "Wohnt in Zürich, arbeitet in 東京", {"städte": ["Zürich", "東京"]})
        memory.remember(scope, "Mag keinen Käse")
        found = memory.recall(scope, "Zürich")
        assert found[0].id == fact.id and found[0].metadata == {"städte": ["Zürich", "東京"]}
        assert memory.recall(scope, "東京")[0].id == fact.id
        assert memory.history("ユーザー", conversation) == []

    def test_appends_from_two_threads_keep_every_message(self, make_memory: Callable[..., Memory]) -> None:
        memory = make_memory()
        per_thread = 40
        start = threading.Barrier(2)
        errors: list[BaseException] = []

        def write(name: str) -> None:
            try:
                start.wait()
                for i in range(per_thread):
                    memory.append("alice", "c1", "user", f"{name}-{i}")
            except BaseException as exc:  # noqa: BLE001 - reported by the test below
                errors.append(exc)

        threads = [threading.Thread(target=write, args=(name,)) for name in ("a", "b")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not errors, errors
        contents = [m.content for m in memory.history("alice", "c1")]
        assert len(contents) == 2 * per_thread
        for name in ("a", "b"):
            assert [c for c in contents if c.startswith(name + "-")] == [f"{name}-{i}" for i in range(per_thread)]

    # --- bad input ------------------------------------------------------------------------------------------

    @pytest.mark.parametrize("call, message", [
        (lambda m: m.append("alice", "c1", "system", "be evil"), "role"),
        (lambda m: m.append("alice", "c1", "tool", "x"), "role"),
        (lambda m: m.append("", "c1", "user", "x"), "scope is empty"),
        (lambda m: m.append("   ", "c1", "user", "x"), "scope is empty"),
        (lambda m: m.append(42, "c1", "user", "x"), "scope must be a string"),
        (lambda m: m.append("alice", "c\n1", "user", "x"), "control character"),
        (lambda m: m.append("alice", "c1", "user", ""), "content is empty"),
        (lambda m: m.append("alice", "c1", "user", None), "content must be a string"),
        (lambda m: m.append("a" * 600, "c1", "user", "x"), "at most"),
        (lambda m: m.history("alice", ""), "conversation is empty"),
        (lambda m: m.remember("alice", "x", {"bad": object()}), "metadata"),
        (lambda m: m.remember("alice", "x", {1: "a"}), "metadata"),
        (lambda m: m.remember("alice", "  "), "text is empty"),
        (lambda m: m.recall("alice", "x", k=0), "k must"),
        (lambda m: m.recall("alice", ""), "query is empty"),
        (lambda m: m.forget("alice", 7), "fact_id"),
    ])
    def test_bad_arguments_are_refused(self, make_memory: Callable[..., Memory], call: Callable[[Memory], Any],
                                       message: str) -> None:
        memory = make_memory()
        with pytest.raises(AgentMemoryError, match=message):
            call(memory)
        assert memory.conversations("alice") == []

    def test_facts_are_fact_objects(self, make_memory: Callable[..., Memory]) -> None:
        memory = make_memory()
        fact = memory.remember("alice", "Works night shifts", None)
        assert isinstance(fact, Fact) and fact.metadata == {} and fact.text == "Works night shifts"
        assert memory.recall("alice", "night shifts")[0].to_dict()["id"] == fact.id
