"""The memory contract's shared parts (checklist 6.2): summarize_history (trimming, summaries, alternating roles),
the token estimate, session keys, keyword overlap, and a memory's history fed to the agent loop as it is."""

from __future__ import annotations

import pytest

from flightdeck.agents.memory.base import (
    SUMMARY_PREFIX,
    AgentMemoryError,
    Message,
    approx_tokens,
    keyword_scores,
    session_key,
    split_session_key,
    summarize_history,
)

pytestmark = pytest.mark.unit


def words(text: str) -> int:
    return len(text.split())


def conversation(n: int, size: int = 4) -> list[Message]:
    return [Message("user" if i % 2 == 0 else "assistant", " ".join([f"w{i}"] * size), at=float(i))
            for i in range(n)]


def test_no_budget_or_a_budget_that_fits_keeps_every_message() -> None:
    messages = conversation(6)
    assert summarize_history(messages, None, None) == messages
    assert summarize_history(messages, None, 24, count_tokens=words) == messages
    assert summarize_history([], lambda m: "x", 5) == []


def test_trimming_keeps_the_newest_messages_starting_with_a_question() -> None:
    messages = conversation(6)
    assert summarize_history(messages, None, 23, count_tokens=words) == messages[2:]
    assert summarize_history(messages, None, 12, count_tokens=words) == messages[4:]  # a3 fits, but is an answer
    assert summarize_history(messages, None, 3, count_tokens=words) == []
    odd = conversation(5)  # ends with a question the assistant has not answered yet
    assert summarize_history(odd, None, 4, count_tokens=words) == odd[4:]


def test_the_summary_stands_for_exactly_what_was_trimmed_and_fits_its_share() -> None:
    seen: list[list[Message]] = []

    def summarize(dropped: list[Message]) -> str:
        seen.append(dropped)
        return "the user greeted the assistant " + " ".join(["and talked"] * 50)  # far too long: cut to fit

    messages = conversation(8)
    out = summarize_history(messages, summarize, 20, count_tokens=words)
    assert seen == [messages[:5]]  # room 15: a5..a7 fit (12), u4 would follow the summary (two questions): trimmed
    assert out[1:] == messages[5:]
    assert out[0].summary and out[0].role == "user" and out[0].at == 4.0
    assert out[0].content.startswith(SUMMARY_PREFIX + "the user greeted") and out[0].content.endswith("…")
    assert sum(words(m.content) for m in out) <= 20
    assert [m.role for m in out] == ["user", "assistant", "user", "assistant"]


def test_an_empty_summary_or_no_room_for_one_falls_back_to_plain_trimming() -> None:
    messages = conversation(6)
    assert summarize_history(messages, lambda m: "  ", 12, count_tokens=words) == messages[4:]
    out = summarize_history(messages, lambda m: "a summary", 2, count_tokens=words)
    assert out == []  # 2 tokens hold neither a message nor the summary's heading


def test_bad_budgets_are_refused() -> None:
    for budget in (0, -3, 2.5, True):
        with pytest.raises(AgentMemoryError, match="max_tokens"):
            summarize_history(conversation(2), None, budget)  # type: ignore[arg-type]
    with pytest.raises(AgentMemoryError, match="summary_share"):
        summarize_history(conversation(4), lambda m: "x", 3, count_tokens=words, summary_share=1.0)


def test_the_token_estimate_grows_with_the_text_in_any_script() -> None:
    assert approx_tokens("") == 0
    assert approx_tokens("hi") == 1 and approx_tokens("hello, world!") == 2 + 1 + 2 + 1
    assert approx_tokens("internationalization") == 5
    assert approx_tokens("東京タワーは高い") == 2 and approx_tokens("🚀🚀") == 2
    long = "word " * 1000
    assert 900 < approx_tokens(long) < 1100


def test_session_keys_differ_for_every_pair_and_read_back() -> None:
    pairs = [("a", "b/c"), ("a/b", "c"), ("a:b", "c"), ("a", "b:c"), ("a*", "c"), ("a", "*c"), ("ü", "💬"),
             ("%2F", "x")]
    keys = [session_key(s, c) for s, c in pairs]
    assert len(set(keys)) == len(pairs)
    assert all("*" not in k and ":" not in k and k.count("/") == 1 for k in keys)
    assert [split_session_key(k) for k in keys] == pairs
    assert split_session_key("no-slash") is None and split_session_key("a/b/c") is None


def test_keyword_overlap_ignores_case_and_stop_words() -> None:
    scores = keyword_scores("What is the CAT called?", ["The cat is called Miso", "The dog is called Rex",
                                                         "what is the"])
    assert scores[0] > scores[1] > 0 and scores[2] == 0
    assert keyword_scores("Zürich", ["wohnt in zürich"])[0] == pytest.approx(1 / 2 ** 0.5)


def test_a_message_is_the_mapping_the_agent_loop_takes() -> None:
    from flightdeck.agents.memory.builtin import BuiltinMemory
    from flightdeck.agents.runtime import AgentLoop
    from flightdeck.testing.agent_fakes import ScriptedAgentModel
    from flightdeck.workspace import Workspace

    message = Message("assistant", "Hello", at=1.0, summary=False)
    assert dict(message) == {"role": "assistant", "content": "Hello"}
    assert message.get("role") == "assistant" and message.get("at") is None and len(message) == 2
    assert message.to_dict() == {"role": "assistant", "content": "Hello", "at": 1.0, "summary": False}

    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace(Path(tmp) / ".flightdeck")
        try:
            memory = BuiltinMemory(ws.engine)
            memory.append("alice", "c1", "user", "My kettle is the Aurora.")
            memory.append("alice", "c1", "assistant", "Noted.")
            model = ScriptedAgentModel([{"answer": "The Aurora.", "cites": []}])
            run = AgentLoop(model, []).run("Which kettle do I have?", history=memory.history("alice", "c1"))
        finally:
            ws.close()
    assert run.answer == "The Aurora."
    assert model.requests[0]["messages"][1:] == [{"role": "user", "content": "My kettle is the Aurora."},
                                                 {"role": "assistant", "content": "Noted."},
                                                 {"role": "user", "content": "Which kettle do I have?"}]
