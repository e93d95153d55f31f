"""OpenAI's Assistants API (checklist 3.2, 3.3), sunset by OpenAI and served locally by flightdeck over the agent
runtime, driven by the real `openai` SDK's `client.beta` against uvicorn on 127.0.0.1: an assistant with
`file_search` and a function tool, a thread, a run that searches the index and cites the file (`file_citation`
annotations on its message), a run that requires action and goes on with the submitted output, keys kept apart,
errors. The agent model is scripted (what the packaged model does under the schema is tested in
tests/agents/test_runtime.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
openai = pytest.importorskip("openai")
httpx = pytest.importorskip("httpx")

from live_server import LiveServer, agent_server, bearer, openai_client  # noqa: E402

from flightdeck.testing import ScriptedAgentModel as Scripted  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore:.*Assistants API is deprecated"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]

DOCS = {"kettles.md": "# Kettles\n\nThe Aurora kettle boils 1.7 litres in three minutes.\n",
        "toasters.md": "# Toasters\n\nThe Boreal toaster has four slots and a bagel mode.\n"}
AGENTS = "agents:\n  tools: [{provider: file_search, k: 1}]\n"
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}



@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[LiveServer, dict[str, str], Scripted]]:
    with agent_server(tmp_path, DOCS, AGENTS) as running:
        yield running


_sdk = openai_client


def test_the_sdk_has_the_assistants_api_still() -> None:
    client = openai.OpenAI(base_url="http://127.0.0.1:9/v1", api_key="x")
    assert callable(client.beta.assistants.create) and callable(client.beta.threads.runs.create_and_poll)
    assert callable(client.beta.threads.runs.submit_tool_outputs_and_poll)


@pytest.mark.exercises("model.frameworks.openai_assistants")
@pytest.mark.exercises("model.agent_frameworks.openai_assistants")
def test_a_run_searches_the_index_and_its_answer_cites_the_file(
        served: tuple[LiveServer, dict[str, str], Scripted]) -> None:
    server, keys, model = served
    model.add({"tool": "search_documents", "arguments": {"query": "Aurora kettle"}},
              {"answer": "The Aurora boils 1.7 litres.", "cites": [1]})
    client = _sdk(server, keys["viewer"])
    assistant = client.beta.assistants.create(model="handbook", name="Helper", instructions="Answer from the files.",
                                              tools=[{"type": "file_search"}, WEATHER])
    assert [t.type for t in assistant.tools] == ["file_search", "function"]
    assert client.beta.assistants.retrieve(assistant.id).instructions == "Answer from the files."
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "How much does the Aurora hold?"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert run.status == "completed" and run.usage.total_tokens > 0
    messages = client.beta.threads.messages.list(thread_id=thread.id)
    answer = messages.data[0]
    assert answer.role == "assistant" and answer.run_id == run.id and answer.assistant_id == assistant.id
    text = answer.content[0].text
    [annotation] = text.annotations
    assert annotation.type == "file_citation" and annotation.file_citation.file_id.endswith("kettles.md")
    assert text.value[annotation.start_index:annotation.end_index] == annotation.text == "【1†kettles.md】"
    # the typical application swaps each marker for a footnote
    assert text.value.replace(annotation.text, " [1]") == "The Aurora boils 1.7 litres. [1]"
    # the model read the assistant's instructions and the searched passage
    assert model.requests[0]["messages"][0]["content"].endswith("Answer from the files.")
    assert "1.7 litres" in model.requests[1]["messages"][-1]["content"]
    trace_id = run.model_extra["flightdeck"]["trace_ids"][0]
    trace = httpx.get(f"{server.url}/v1/traces/{trace_id}", headers=bearer(keys["viewer"])).json()
    assert trace["operation"] == "assistants" and trace["details"]["citations"][0]["chunk_id"]


@pytest.mark.exercises("model.frameworks.openai_assistants")
@pytest.mark.exercises("model.agent_frameworks.openai_assistants")
def test_a_run_requires_action_for_a_function_and_goes_on_with_the_submitted_output(
        served: tuple[LiveServer, dict[str, str], Scripted]) -> None:
    server, keys, model = served
    model.add({"tool": "get_weather", "arguments": {"city": "Oslo"}},
              {"answer": "It is snowy in Oslo.", "cites": [1]},
              {"answer": "Yes: bring a coat.", "cites": []})
    client = _sdk(server, keys["viewer"])
    assistant = client.beta.assistants.create(model="m", tools=[{"type": "file_search"}, WEATHER])
    thread = client.beta.threads.create()
    client.beta.threads.messages.create(thread_id=thread.id, role="user", content="Weather in Oslo?")
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert run.status == "requires_action" and run.required_action.type == "submit_tool_outputs"
    [call] = run.required_action.submit_tool_outputs.tool_calls
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Oslo"}
    with pytest.raises(openai.UnprocessableEntityError, match=r"tool_outputs\[0\]\.tool_call_id: the run waits for"):
        client.beta.threads.runs.submit_tool_outputs(thread_id=thread.id, run_id=run.id,
                                                     tool_outputs=[{"tool_call_id": "call_other", "output": "x"}])
    done = client.beta.threads.runs.submit_tool_outputs_and_poll(
        thread_id=thread.id, run_id=run.id, tool_outputs=[{"tool_call_id": call.id, "output": "snowy, -3 C"}])
    assert done.status == "completed" and done.required_action is None and done.id == run.id
    assert len(done.model_extra["flightdeck"]["trace_ids"]) == 2
    # the output went into the same run as a fenced source, after the model's own call
    read = model.requests[1]["messages"]
    assert json.loads(read[-2]["content"]) == {"tool": "get_weather", "arguments": {"city": "Oslo"}}
    assert read[-1]["content"].startswith('<source id="1" tool="get_weather"') and "snowy" in read[-1]["content"]
    answer = client.beta.threads.messages.list(thread_id=thread.id, order="asc").data
    assert [(m.role, m.content[0].text.value) for m in answer] == [("user", "Weather in Oslo?"),
                                                                    ("assistant", "It is snowy in Oslo.")]
    assert answer[1].content[0].text.annotations == []  # a tool's output is no file
    # it waits for nothing now
    with pytest.raises(openai.UnprocessableEntityError, match="is completed: it waits for no tool outputs"):
        client.beta.threads.runs.submit_tool_outputs(thread_id=thread.id, run_id=run.id,
                                                     tool_outputs=[{"tool_call_id": call.id, "output": "x"}])
    # a follow-up run reads the thread so far as history
    client.beta.threads.messages.create(thread_id=thread.id, role="user", content="Do I need a coat?")
    again = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert again.status == "completed"
    assert [m["content"] for m in model.requests[2]["messages"][1:]] == [
        "Weather in Oslo?", "It is snowy in Oslo.", "Do I need a coat?"]
    assert [r.id for r in client.beta.threads.runs.list(thread_id=thread.id)] == [again.id, run.id]


def test_assistants_threads_and_runs_are_kept_per_key(served: tuple[LiveServer, dict[str, str], Scripted]) -> None:
    server, keys, model = served
    mine, theirs = _sdk(server, keys["viewer"]), _sdk(server, keys["editor"])
    assistant = mine.beta.assistants.create(model="m", instructions="secret")
    thread = mine.beta.threads.create(messages=[{"role": "user", "content": "my order is 77"}])
    with pytest.raises(openai.NotFoundError, match="made with this key"):
        theirs.beta.assistants.retrieve(assistant.id)
    with pytest.raises(openai.NotFoundError):
        theirs.beta.threads.messages.list(thread_id=thread.id)
    with pytest.raises(openai.NotFoundError):
        theirs.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    assert theirs.beta.assistants.list().data == []
    assert [a.id for a in mine.beta.assistants.list().data] == [assistant.id]
    assert model.requests == []
    assert httpx.get(f"{server.url}/v1/assistants").status_code == 401
    assert httpx.post(f"{server.url}/v1/threads", json={}).status_code == 401
    assert mine.beta.assistants.delete(assistant.id).deleted is True
    with pytest.raises(openai.NotFoundError):
        mine.beta.assistants.retrieve(assistant.id)


def test_malformed_requests_are_refused_naming_the_field(
        served: tuple[LiveServer, dict[str, str], Scripted]) -> None:
    server, keys, model = served
    client = _sdk(server, keys["viewer"])
    with pytest.raises(openai.UnprocessableEntityError, match=r"tools\[0\]\.type: 'code_interpreter' is not served"):
        client.beta.assistants.create(model="m", tools=[{"type": "code_interpreter"}])
    with pytest.raises(openai.UnprocessableEntityError, match="model"):
        client.beta.assistants.create(model="")
    assistant = client.beta.assistants.create(model="m")
    thread = client.beta.threads.create()
    with pytest.raises(openai.UnprocessableEntityError, match="no user message to answer"):
        client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    with pytest.raises(openai.UnprocessableEntityError, match="role"):
        client.beta.threads.messages.create(thread_id=thread.id, role="system", content="x")  # type: ignore[arg-type]
    with pytest.raises(openai.UnprocessableEntityError, match=r"content\[0\]: only text parts"):
        client.beta.threads.messages.create(thread_id=thread.id, role="user", content=[
            {"type": "image_url", "image_url": {"url": "http://x"}}])
    with pytest.raises(openai.UnprocessableEntityError, match="stream"):
        client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id, stream=True)
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.runs.create(thread_id=thread.id, assistant_id="asst_nope")
    bad = httpx.post(f"{server.url}/v1/threads/{thread.id}/runs", headers=bearer(keys["viewer"]),
                     json={"assistant_id": "a b"})
    assert bad.status_code == 422 and "assistant_id" in bad.json()["error"]["message"]
    assert model.requests == []
