"""The anthropic generator through the official SDK against tests/anthropic_server.py, a local server speaking
Anthropic's Messages API wire format that answers with the packaged Gemma 3 270M (llama-cpp-python): the request's
shape (system, turns, stops), streaming and its early close, and the errors a user meets (key, host, model)."""

from __future__ import annotations

import json
import re
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from flightdeck.models.generators.anthropic import AnthropicConfig, AnthropicGenerator, AnthropicGeneratorError
from flightdeck.models.generators.base import Completion
from flightdeck.registry import Category
from flightdeck.testing.generator_contract import GeneratorContract
from needs import needs_provider

pytestmark = [pytest.mark.integration, needs_provider(Category.GENERATOR, "anthropic")]

FRANCE = [{"role": "user", "content": "Question: What is the capital of France?\nAnswer:"}]
COUNTING = [{"role": "user", "content": "Count from 1 to 500: 1, 2, 3, 4, 5, 6,"}]


def _config(server: Any, **settings: Any) -> AnthropicConfig:
    base = {"model": server.model, "base_url": server.base_url, "api_key": server.api_key, "max_tokens": 48,
            "max_retries": 0}
    return AnthropicConfig(**{**base, **settings})


@pytest.fixture(scope="module")
def generator(anthropic_server: Any) -> Iterator[AnthropicGenerator]:
    gen = AnthropicGenerator(_config(anthropic_server))
    yield gen
    gen.close()


def _answered_after(server: Any, seen: int, sent: Callable[[dict[str, Any]], bool] = lambda request: True,
                    timeout: float = 20.0) -> dict[str, Any]:
    """The first request the server finished answering after the ``seen`` it had recorded that is ``sent``
    (it records a stream once the stream ends, or once the client is gone: an earlier test's stream that the
    server is still winding down may be recorded after ``seen`` was counted)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        mine = [r for r in server.requests()[seen:] if sent(r)]
        if mine:
            return mine[0]
        time.sleep(0.05)
    raise AssertionError(f"the server recorded no such answer within {timeout} s (see {server.log})")


def _asks(text: str, max_tokens: int | None = None) -> Callable[[dict[str, Any]], bool]:
    """A request whose messages contain ``text`` (and, if given, that asks for ``max_tokens``)."""
    return lambda request: (text in json.dumps(request["body"].get("messages", []))
                            and max_tokens in (None, request["body"].get("max_tokens")))


# Two promises the packaged Gemma 3 270M does not keep (as for llama_cpp and openai, tests/models/
# test_generator_contract.py): it answers "Michelangelo." from its own knowledge to a question the widget sources do
# not answer, and its answers come without [n] markers.
class TestAnthropicGenerator(GeneratorContract):
    cites_sources = False
    refuses_without_an_answer = False

    @pytest.fixture
    def generator(self, generator: AnthropicGenerator) -> AnthropicGenerator:
        return generator


def test_the_system_message_goes_in_system_and_the_turns_alternate(anthropic_server: Any,
                                                                  generator: AnthropicGenerator) -> None:
    seen = len(anthropic_server.requests())
    messages = [{"role": "system", "content": "Answer with the name of a city."},
                {"role": "user", "content": "Question: What is the capital of Italy?\nAnswer:"},
                {"role": "assistant", "content": "Rome"},
                {"role": "user", "content": "Question: What is the capital of Spain?\nAnswer: Madrid"},
                {"role": "user", "content": "Question: What is the capital of France?\nAnswer:"}]
    done = generator.complete(messages, max_tokens=8, stop=["\nQuestion:"])
    request = _answered_after(anthropic_server, seen, _asks("capital of France", 8))
    body = request["body"]
    assert body["system"] == "Answer with the name of a city."
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]  # the two user turns joined
    assert body["messages"][2]["content"] == messages[3]["content"] + "\n\n" + messages[4]["content"]
    assert body["stop_sequences"] == ["\nQuestion:"] and body["max_tokens"] == 8
    assert "temperature" not in body  # not set: API version 2026-10-21 would refuse one
    assert request["key_ok"] and request["anthropic_version"]
    assert request["prompt"].startswith("Answer with the name of a city.\n\nQuestion: What is the capital of Italy?")
    assert "paris" in done.text.lower() and done.prompt_tokens > 20 and 0 < done.completion_tokens <= 8
    assert done.finish_reason in {"stop", "length"}


def test_stop_sequences_and_max_tokens_end_the_text(generator: AnthropicGenerator, anthropic_server: Any) -> None:
    seen = len(anthropic_server.requests())
    stopped = generator.complete(COUNTING, max_tokens=40, stop=["10"])
    request = _answered_after(anthropic_server, seen, lambda request: request["body"].get("max_tokens") == 40)
    assert request["outcome"] == "stop_sequence" and stopped.finish_reason == "stop"
    assert stopped.text.startswith("7, 8, 9") and "10" not in stopped.text
    cut = generator.complete(COUNTING, max_tokens=5)
    assert (cut.finish_reason, cut.completion_tokens) == ("length", 5)


def test_streamed_deltas_join_to_the_completion_of_one_call(generator: AnthropicGenerator,
                                                            anthropic_server: Any) -> None:
    whole = generator.complete(FRANCE, max_tokens=12)
    seen = len(anthropic_server.requests())
    items = list(generator.complete_stream(FRANCE, max_tokens=12))
    deltas, done = items[:-1], items[-1]
    assert len(deltas) > 1 and all(isinstance(d, str) and d for d in deltas)  # token by token, over SSE
    assert isinstance(done, Completion) and done.text == "".join(deltas).strip() == whole.text
    assert "paris" in done.text.lower()
    # the usage of the stream's message_start and message_delta events: what the server counted for one call
    assert (done.prompt_tokens, done.completion_tokens, done.finish_reason) == (
        whole.prompt_tokens, whole.completion_tokens, whole.finish_reason)
    request = _answered_after(anthropic_server, seen, lambda request: request["body"].get("stream") is True)
    assert request["body"]["stream"] is True and request["deltas"] == len(deltas)


def test_closing_the_stream_early_stops_the_server_generating(generator: AnthropicGenerator,
                                                              anthropic_server: Any) -> None:
    seen = len(anthropic_server.requests())
    stream = generator.complete_stream(COUNTING, max_tokens=400)
    first = [next(stream) for _ in range(3)]
    assert all(isinstance(piece, str) for piece in first)
    stream.close()  # a client that went away
    request = _answered_after(anthropic_server, seen, lambda request: request["body"].get("max_tokens") == 400)
    assert request["outcome"] == "client closed the stream", request
    assert request["output_tokens"] < 60, request  # not the 400 asked for
    assert "paris" in generator.complete(FRANCE, max_tokens=8).text.lower()  # the server serves the next one


def test_a_wrong_key_names_the_server_the_model_and_where_the_key_came_from(
        anthropic_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    where = re.escape(f"generator 'anthropic' ({anthropic_server.base_url}, model '{anthropic_server.model}')")
    wrong = AnthropicGenerator(_config(anthropic_server, api_key="not-the-key-4711"))
    with pytest.raises(AnthropicGeneratorError, match=rf"{where}: the API key was refused \(401: invalid x-api-key; "
                                                      r"it came from the `api_key` setting\)") as err:
        wrong.complete(FRANCE)
    assert "not-the-key-4711" not in str(err.value)
    with pytest.raises(AnthropicGeneratorError, match="the API key was refused"):
        next(wrong.complete_stream(FRANCE))  # a stream fails the same way, before its first delta
    # $ANTHROPIC_API_KEY goes to the endpoint $ANTHROPIC_BASE_URL names
    monkeypatch.setenv("ANTHROPIC_BASE_URL", anthropic_server.base_url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "not-the-key-either")
    from_env = AnthropicGenerator(AnthropicConfig(model=anthropic_server.model, max_retries=0))
    assert from_env.base_url == anthropic_server.base_url
    with pytest.raises(AnthropicGeneratorError, match=rf"{where}: .*it came from the ANTHROPIC_API_KEY environment"):
        from_env.complete(FRANCE)


def test_the_environments_key_and_headers_go_only_where_they_belong(anthropic_server: Any,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    monkeypatch.setenv("ANTHROPIC_API_KEY", anthropic_server.api_key)  # the right key, but meant for Anthropic
    monkeypatch.setenv("ANTHROPIC_AUTH_TOKEN", "token-meant-for-anthropic")
    monkeypatch.setenv("ANTHROPIC_CUSTOM_HEADERS", "X-Meant-For-Anthropic: yes")
    seen = len(anthropic_server.requests())
    elsewhere = AnthropicGenerator(AnthropicConfig(model=anthropic_server.model, base_url=anthropic_server.base_url,
                                                   max_retries=0))
    with pytest.raises(AnthropicGeneratorError, match=r"wants an API key \(401\) and none was sent: the "
                       r"ANTHROPIC_API_KEY environment variable is sent only to https://api\.anthropic\.com .*"
                       r"`api_key: \$\{ANTHROPIC_API_KEY\}`"):
        elsewhere.complete(FRANCE)
    refused = _answered_after(anthropic_server, seen, lambda request: request["key_ok"] is False)
    assert refused["key_ok"] is False and "x-meant-for-anthropic" not in refused["headers"]
    named = AnthropicGenerator(_config(anthropic_server))  # a key the spec names goes to the spec's endpoint
    assert named.complete(FRANCE, max_tokens=4).text
    sent = anthropic_server.requests()[-1]
    assert sent["key_ok"] and "x-meant-for-anthropic" not in sent["headers"]
    # Anthropic's own API is never called without a key
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    default = AnthropicGenerator()
    assert default.model_id == "anthropic:api.anthropic.com/claude-sonnet-4-5"
    with pytest.raises(AnthropicGeneratorError, match=r"needs an API key for https://api\.anthropic\.com: set the "
                                                      r"ANTHROPIC_API_KEY environment variable, or `api_key: "):
        default.complete(FRANCE)


def test_an_unreachable_server_is_named(unused_port: int) -> None:
    down = AnthropicGenerator(AnthropicConfig(base_url=f"http://127.0.0.1:{unused_port}", max_retries=0, timeout=5))
    with pytest.raises(AnthropicGeneratorError, match=rf"\(http://127\.0\.0\.1:{unused_port}, model "
                                                      r"'claude-sonnet-4-5'\): the server could not be reached after "
                                                      r"0 retries .*fix `base_url` under model\.generator"):
        down.complete(FRANCE)
    with pytest.raises(AnthropicGeneratorError, match="could not be reached"):
        list(down.complete_stream(FRANCE))


def test_an_unknown_model_is_a_404_that_names_it(anthropic_server: Any) -> None:
    unknown = AnthropicGenerator(_config(anthropic_server, model="claude-nonexistent-1"))
    with pytest.raises(AnthropicGeneratorError, match=r"model 'claude-nonexistent-1'\): 404 \(model: "
                                                      r"claude-nonexistent-1\) — the server does not serve this model"):
        unknown.complete(FRANCE)


def test_a_temperature_is_sent_only_when_set(anthropic_server: Any) -> None:
    seen = len(anthropic_server.requests())
    warm = AnthropicGenerator(_config(anthropic_server, temperature=0.5))
    try:
        warm.complete(FRANCE, max_tokens=4)
        error = None
    except AnthropicGeneratorError as e:
        error = str(e)
    request = _answered_after(anthropic_server, seen, lambda request: "temperature" in request["body"])
    assert request["body"]["temperature"] == 0.5
    if request["anthropic_version"] == "2026-10-21":  # anthropic SDK 2: the API version without sampling settings
        assert error is not None and "answered 400: temperature: Extra inputs are not permitted" in error
    else:
        assert error is None, error


@pytest.mark.exercises("model.type.llm", provider="anthropic")
def test_ask_answers_through_the_anthropic_generator_from_the_spec(tmp_path: Path, anthropic_server: Any,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from conftest import SPEC, write_docs
    from flightdeck import Project
    from flightdeck.models.generators.base import GROUNDED_SYSTEM_PROMPT

    monkeypatch.setenv("FD_TEST_ANTHROPIC_URL", anthropic_server.base_url)
    monkeypatch.setenv("FD_TEST_ANTHROPIC_KEY", anthropic_server.api_key)
    write_docs(tmp_path)
    spec = SPEC.format(size=128) + textwrap.dedent("""\
        model:
          generator:
            provider: anthropic
            model: gemma-3-270m
            base_url: ${FD_TEST_ANTHROPIC_URL}
            api_key: ${FD_TEST_ANTHROPIC_KEY}
            max_tokens: 48
            top_chunks: 3
        """)
    (tmp_path / "flightdeck.yaml").write_text(spec)
    project = Project.load(tmp_path / "flightdeck.yaml")
    project.run()
    seen = len(anthropic_server.requests())
    question = "Which error means the sprockets are not aligned?"
    answer = project.ask(question)
    request = _answered_after(anthropic_server, seen, _asks(question))
    assert request["body"]["system"] == GROUNDED_SYSTEM_PROMPT  # the grounded prompt, as the system parameter
    user = request["body"]["messages"][-1]["content"]
    assert question in user and "W42" in user  # the retrieved chunk is among the sources
    assert answer.found and answer.usage["prompt_tokens"] > 0  # written by the model (extractive has no usage)
    assert "sprocket" in answer.answer.lower() or "w42" in answer.answer.lower()
    assert "Question:" not in answer.answer and "<source" not in answer.answer
    assert {c.document_id for c in answer.citations} <= {h.document_id for h in project.search(question, k=3).hits}
    project.generator.close()


def test_a_query_transformation_writes_its_query_with_the_anthropic_generator(
        tmp_path: Path, anthropic_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from conftest import SPEC, write_docs
    from flightdeck import Project
    from flightdeck.spec.loader import check_spec

    monkeypatch.setenv("FD_TEST_ANTHROPIC_URL", anthropic_server.base_url)
    monkeypatch.setenv("FD_TEST_ANTHROPIC_KEY", anthropic_server.api_key)
    write_docs(tmp_path)
    spec = SPEC.format(size=128).replace("system: [hybrid_search]", "system: [hybrid_search, query_transformation]")
    spec = spec.replace("  search: {mode: hybrid, k: 5}",
                        "  search: {mode: hybrid, k: 5}\n  query_transformation: rewrite")
    spec += textwrap.dedent("""\
        model:
          generator: {provider: anthropic, model: gemma-3-270m, base_url: "${FD_TEST_ANTHROPIC_URL}",
                      api_key: "${FD_TEST_ANTHROPIC_KEY}", max_tokens: 32}
        """)
    (tmp_path / "flightdeck.yaml").write_text(spec)
    problems = [str(p) for p in check_spec(tmp_path / "flightdeck.yaml")[1]]
    assert problems == []  # anthropic counts as an LLM generator that writes text
    project = Project.load(tmp_path / "flightdeck.yaml")
    project.run()
    seen = len(anthropic_server.requests())
    result = project.search("How do I fix error W42?", k=3)
    request = _answered_after(anthropic_server, seen, _asks("How do I fix error W42?"))
    assert "How do I fix error W42?" in request["body"]["messages"][-1]["content"] and request["key_ok"]
    assert [q["label"] for q in result.queries] == ["original", "rewrite"], result.queries
    assert result.queries[1]["keyword"] == request["text"].strip()  # the model's query was searched
    assert result.hits[0].document_id == "docs/guide/install.md", result.hits
    project.generator.close()
