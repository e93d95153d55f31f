"""Streamed completions and answers from the real providers (llama.cpp in-process and llama-cpp-python's
OpenAI-compatible server, both with the packaged Gemma 3 270M): the stream writes the same text as one call."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from flightdeck.models.generators.base import ANSWER_STOP, Answer, Completion, stream_answer
from flightdeck.retrieval.search import SearchHit

pytestmark = pytest.mark.integration

HITS = [
    SearchHit("c1", "d1", "file:///docs/install.md", "Installing Widgets", "Requirements", 0.9,
              "A widget needs a frame, two sprockets and a license key. The license key is printed on the box.", {}),
    SearchHit("c2", "d2", "file:///docs/care.html", "Caring for widgets", "Storage", 0.5,
              "Store widgets in a dry place between 5 and 25 degrees Celsius.", {}),
]
FRANCE = [{"role": "user", "content": "Question: What is the capital of France?\nAnswer:"}]


def _drain(stream: Iterator[Any]) -> tuple[list[str], Any]:
    items = list(stream)
    assert items and not isinstance(items[-1], str), items
    assert all(isinstance(i, str) and i for i in items[:-1]), items
    return items[:-1], items[-1]


@pytest.fixture(scope="module")
def openai_completion(llama_chat_server: Any) -> Iterator[Any]:
    from flightdeck.models.generators.openai import OpenAIGenerator, OpenAIGeneratorConfig

    # The packaged Gemma 3 270M is a base model: it answers well only as a text to continue.
    gen = OpenAIGenerator(OpenAIGeneratorConfig(model=llama_chat_server.model, base_url=llama_chat_server.base_url,
                                                api_key=llama_chat_server.api_key, max_tokens=48,
                                                prompt_format="completion"))
    yield gen
    gen.close()


@pytest.fixture(params=["llama_cpp", "openai"])
def generator(request: pytest.FixtureRequest) -> Any:
    return request.getfixturevalue("llama_generator" if request.param == "llama_cpp" else "openai_completion")


def test_a_streamed_completion_writes_the_text_of_one_call(generator: Any) -> None:
    whole = generator.complete(FRANCE, max_tokens=12)
    deltas, done = _drain(generator.complete_stream(FRANCE, max_tokens=12))
    assert len(deltas) > 1  # token by token, not the whole text at once
    assert isinstance(done, Completion) and done.text == "".join(deltas).strip() == whole.text
    assert "paris" in done.text.lower()
    # llama-cpp-python's chunks carry no usage: llama_cpp counts with the model's tokenizer, openai estimates
    # (three characters a token) when the server ignores stream_options, as llama-cpp-python's does
    assert done.prompt_tokens > 5 and done.completion_tokens > 0
    if generator.model_id.startswith("llama_cpp"):
        assert (done.prompt_tokens, done.completion_tokens) == (whole.prompt_tokens, whole.completion_tokens)
    assert done.finish_reason in {"stop", "length"}


def test_a_streamed_answer_is_the_answer_of_one_call(generator: Any) -> None:
    question = "What does a widget need?"
    deltas, final = _drain(generator.answer_stream(question, HITS, None, "v1"))
    messages, _ = generator.answer_messages(question, HITS)
    whole = generator.complete(messages, stop=ANSWER_STOP)  # the same prompt, not streamed
    assert isinstance(final, Answer) and final.found and deltas
    assert "".join(deltas).strip() == whole.text and whole.text.startswith(final.answer.split(" [")[0])
    again = generator.answer(question, HITS, None, "v1")
    assert (final.answer, final.citations, final.found, final.prompt) == (again.answer, again.citations,
                                                                         again.found, again.prompt)
    assert final.prompt["template"] == "grounded_completion" and len(final.prompt["sha256"]) == 64
    assert 0 < final.timings_ms["first_token"] <= final.timings_ms["answer"]
    assert final.usage["prompt_tokens"] > 50 and final.usage["completion_tokens"] > 0
    # the service layer's entry point streams the same way
    assert list(stream_answer(generator, question, HITS, None, "v1"))[-1].answer == final.answer


def test_closing_a_stream_early_frees_the_model(generator: Any) -> None:
    stream = generator.complete_stream(FRANCE, max_tokens=64)
    assert isinstance(next(stream), str)
    stream.close()  # a client that went away
    assert "paris" in generator.complete(FRANCE, max_tokens=8).text.lower()  # the lock was released
    if hasattr(generator, "_lock"):
        assert not generator._lock.locked()


def test_llama_cpp_streams_a_context_error_as_one_that_names_the_fix(gemma_gguf: Any) -> None:
    from flightdeck.errors import FlightdeckError
    from flightdeck.models.generators.llama_cpp import LlamaCppConfig, LlamaCppGenerator

    small = LlamaCppGenerator(LlamaCppConfig(model_path=str(gemma_gguf), n_ctx=256, n_threads=2))
    try:
        with pytest.raises(FlightdeckError, match="n_ctx"):
            list(small.complete_stream([{"role": "user", "content": "word " * 400}], max_tokens=4))
        assert not small._lock.locked()
    finally:
        small.close()


@pytest.fixture
def strict_proxy(llama_chat_server: Any) -> Iterator[tuple[str, list[bool]]]:
    """llama-cpp-python's server behind a proxy that refuses ``stream_options`` with a 400, as an OpenAI-compatible
    server that validates strictly does; everything else is relayed. Yields its /v1 URL and, per request, whether
    it asked for stream_options."""
    import http.server
    import json
    import threading

    import httpx

    asked: list[bool] = []
    upstream = llama_chat_server.base_url.removesuffix("/v1")

    class Relay(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            asked.append("stream_options" in json.loads(body))
            if asked[-1]:
                error = json.dumps({"error": {"message": "stream_options: Extra inputs are not permitted",
                                              "type": "invalid_request_error"}}).encode()
                self.send_response(400)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(error)))
                self.end_headers()
                self.wfile.write(error)
                return
            headers = {"Authorization": self.headers["Authorization"], "Content-Type": "application/json"}
            with httpx.stream("POST", upstream + self.path, content=body, headers=headers, timeout=120) as r:
                self.send_response(r.status_code)
                self.send_header("Content-Type", r.headers["content-type"])
                self.end_headers()
                for part in r.iter_raw():
                    self.wfile.write(part)
                    self.wfile.flush()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Relay)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", asked
    finally:
        server.shutdown()
        server.server_close()


def test_a_server_that_refuses_stream_options_is_asked_again_without(strict_proxy: tuple[str, list[bool]],
                                                                     llama_chat_server: Any,
                                                                     openai_completion: Any) -> None:
    from flightdeck.models.generators.openai import OpenAIGenerator, OpenAIGeneratorConfig

    url, asked = strict_proxy
    gen = OpenAIGenerator(OpenAIGeneratorConfig(model=llama_chat_server.model, base_url=url, max_retries=0,
                                                api_key=llama_chat_server.api_key, prompt_format="completion"))
    try:
        deltas, done = _drain(gen.complete_stream(FRANCE, max_tokens=8))
        assert asked == [True, False]  # refused once, then asked without the option
        assert done.text == "".join(deltas).strip() == openai_completion.complete(FRANCE, max_tokens=8).text
        _drain(gen.complete_stream(FRANCE, max_tokens=4))
        assert asked == [True, False, False]  # remembered: not asked again
    finally:
        gen.close()
