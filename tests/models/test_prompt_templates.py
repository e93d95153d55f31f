"""Prompt templates (models/generators/templates.py): the shipped defaults render exactly the prompt the code wrote
before templates, a document cannot inject template syntax, a spec picks a template by name or path, every LLM
answer records the template it was made with, and a broken template is reported with its file and line."""

from __future__ import annotations

import hashlib
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest

from flightdeck.errors import FlightdeckError
from flightdeck.models.generators.base import (
    GROUNDED_SYSTEM_PROMPT,
    Completion,
    LlmGenerator,
    LlmSettings,
    render_completion_prompt,
)
from flightdeck.models.generators.templates import PROMPTS_DIR, load_template, shipped_templates
from flightdeck.retrieval.search import SearchHit


class _CharCounted(LlmGenerator):
    """Prompt building only (no model): a token per four characters; chat or completion format."""

    def __init__(self, fmt: str = "chat", **settings: Any) -> None:
        self.config, self.fmt = LlmSettings(**settings), fmt

    @property
    def prompt_format(self) -> str:
        return self.fmt

    def count_tokens(self, text: str) -> int:
        return len(text) // 4 + 1

    def complete(self, messages, *, max_tokens=None, temperature=None, stop=None):  # noqa: ANN001, ANN201
        self.sent = messages
        return Completion("A widget needs a frame [1].", 40, 8, "stop", 1.0)


def _old_answer_messages(config: Any, count_tokens: Any, question: str,
                         hits: list[Any]) -> tuple[list[dict[str, str]], list[Any]]:
    """The grounded prompt as the code wrote it before templates (commit 614b656), kept verbatim to compare."""
    source_close = re.compile(r"</source>", re.IGNORECASE)
    budget = config.max_prompt_tokens - count_tokens(config.system_prompt + question) - 64
    blocks: list[str] = []
    used: list[Any] = []
    for hit in hits[: config.top_chunks]:
        title = " / ".join(p for p in (hit.title, hit.heading) if p)
        body = source_close.sub("</ source>", hit.text)
        block = f'<source id="{len(used) + 1}" title="{title.replace(chr(34), chr(39))}">\n{body}\n</source>'
        cost = count_tokens(block)
        if cost > budget:
            if used:
                break
            body = body[: max(200, len(body) * budget // max(cost, 1))]
            block = f'<source id="1" title="{title}">\n{body}\n</source>'
            cost = count_tokens(block)
        blocks.append(block)
        used.append(hit)
        budget -= cost
    user = "Sources:\n\n" + "\n\n".join(blocks) + f"\n\nQuestion: {question}\nAnswer:"
    return [{"role": "system", "content": config.system_prompt}, {"role": "user", "content": user}], used


HITS = [
    SearchHit("c1", "d1", "file:///docs/install.md", "Installing Widgets", "Requirements", 0.9,
              "A widget needs a frame, two sprockets and a license key.\n\nThe key is printed on the box.", {}),
    SearchHit("c2", "d2", "file:///docs/care.html", "Caring for widgets", "", 0.5,
              "Store widgets in a dry place between 5 and 25 °C — never in a damp cellar.\n", {}),
    SearchHit("c3", "d3", "file:///docs/faq.md", "", "Frequently asked", 0.4, "  Indented text\twith a tab.  ", {}),
    SearchHit("c4", "d4", "file:///docs/long.md", "Long", "Chapter", 0.3, "sprocket " * 300, {}),
]
CASES = [
    ("What does a widget need?", HITS, {}),
    ("Where are widgets stored?", HITS[:2], {"system_prompt": "Answer from the sources only."}),
    ("How long?", HITS, {"max_prompt_tokens": 400}),  # the fourth hit no longer fits
    ("Over budget?", HITS, {"max_prompt_tokens": 256}),  # only the first three fit
    ("Top two", HITS, {"top_chunks": 2}),
]


@pytest.mark.parametrize(("question", "hits", "settings"), CASES)
def test_the_shipped_templates_render_the_prompt_written_before_templates(question: str, hits: list[Any],
                                                                          settings: dict[str, Any]) -> None:
    chat = _CharCounted("chat", **settings)
    old_messages, old_used = _old_answer_messages(chat.config, chat.count_tokens, question, hits)
    messages, used = chat.answer_messages(question, hits)
    assert messages == old_messages and used == old_used
    # a base model reads the same turns written out as one text
    completion = _CharCounted("completion", **settings)
    text, used = completion.answer_messages(question, hits)
    assert len(text) == 1 and render_completion_prompt(text) == render_completion_prompt(old_messages)
    assert used == old_used


def test_the_packaged_model_reads_the_prompt_written_before_templates(llama_generator: Any) -> None:
    old, _ = _old_answer_messages(llama_generator.config, llama_generator.count_tokens, CASES[0][0], HITS)
    new, _ = llama_generator.answer_messages(CASES[0][0], HITS)
    assert llama_generator.prompt_format == "completion"
    assert render_completion_prompt(new) == render_completion_prompt(old)
    answer = llama_generator.answer(CASES[0][0], HITS, None, "v1")
    sha = hashlib.sha256((PROMPTS_DIR / "grounded_completion.j2").read_bytes()).hexdigest()
    assert answer.prompt == {"template": "grounded_completion", "sha256": sha}


def test_a_document_or_question_cannot_inject_template_syntax() -> None:
    hostile = "Total: {{ 7*7 }} {% for x in range(3) %}x{% endfor %} {# hidden #} {{ system_prompt }} {%- raw %}"
    hit = SearchHit("c9", "d9", "file:///x.md", "{{ 6*7 }} title", "{% if 1 %}h{% endif %}", 1.0, hostile, {})
    messages, _ = _CharCounted().answer_messages("Why {{ 8*8 }}?", [hit])
    user = messages[1]["content"]
    assert hostile in user and "49" not in user and "xxx" not in user  # as written, not evaluated
    assert 'title="{{ 6*7 }} title / {% if 1 %}h{% endif %}"' in user
    assert "Question: Why {{ 8*8 }}?\nAnswer:" in user and "64" not in user


def test_an_answer_records_the_template_it_was_made_with(tmp_path: Path) -> None:
    default = _CharCounted().answer("What does a widget need?", HITS, None, "v1")
    sha = hashlib.sha256((PROMPTS_DIR / "grounded_chat.j2").read_bytes()).hexdigest()
    assert default.prompt == {"template": "grounded_chat", "sha256": sha}
    assert _CharCounted().answer("q?", [], None, "v1").prompt == {}  # no model was asked

    mine = tmp_path / "terse.j2"
    mine.write_text("{% block system %}{{ system_prompt }} Reply in one line.{% endblock %}\n"
                    "{% block user %}{% for s in sources %}[{{ s.id }}] {{ s.text }}\n{% endfor %}"
                    "Q: {{ question }}{% endblock %}\n")
    custom = _CharCounted(prompt_template=str(mine), system_prompt="Be exact.")
    answer = custom.answer("What does a widget need?", HITS[:1], None, "v1")
    assert answer.prompt == {"template": str(mine), "sha256": hashlib.sha256(mine.read_bytes()).hexdigest()}
    assert custom.sent == [{"role": "system", "content": "Be exact. Reply in one line."},
                           {"role": "user", "content": f"[1] {HITS[0].text}\nQ: What does a widget need?"}]
    # the version is the content: an edited file is read again and recorded with its new hash
    mine.write_text(mine.read_text().replace("one line", "two lines"))
    again = custom.answer("What does a widget need?", HITS[:1], None, "v1")
    assert again.prompt["sha256"] == hashlib.sha256(mine.read_bytes()).hexdigest() != answer.prompt["sha256"]
    assert "two lines" in custom.sent[0]["content"]
    # a shipped template is chosen by its name, whatever the model's prompt format
    named = _CharCounted(prompt_template="grounded_completion")
    messages, _ = named.answer_messages("q?", HITS[:1])
    assert [m["role"] for m in messages] == ["user"] and messages[0]["content"].startswith(GROUNDED_SYSTEM_PROMPT)
    assert {"grounded_chat", "grounded_completion"} <= set(shipped_templates())


def test_a_spec_names_a_template_relative_to_its_folder(tmp_path: Path) -> None:
    from conftest import SPEC, write_docs
    from flightdeck import Project

    write_docs(tmp_path)
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "mine.j2").write_text((PROMPTS_DIR / "grounded_chat.j2").read_text())
    for ref, expected in (("prompts/mine.j2", str(tmp_path / "prompts" / "mine.j2")),
                          ("grounded_completion", "grounded_completion")):
        (tmp_path / "flightdeck.yaml").write_text(SPEC.format(size=128) + textwrap.dedent(f"""\
            model:
              generator: {{provider: openai, base_url: "http://127.0.0.1:9/v1", prompt_template: {ref}}}
            """))
        generator = Project.load(tmp_path / "flightdeck.yaml").generator
        assert generator.config.prompt_template == expected
        assert generator.prompt_template().record["template"] == expected


def _broken(tmp_path: Path, text: str) -> _CharCounted:
    path = tmp_path / "broken.j2"
    path.write_text(text)
    return _CharCounted(prompt_template=str(path))


@pytest.mark.parametrize(("text", "where", "why"), [
    ("{% block user %}\nSources:\n{% for s in sources %}{{ s.text }\n{% endfor %}{% endblock %}", 3, "does not parse"),
    ("{% block user %}\n{{ question }}\n{{ context }}{% endblock %}", 3, "uses 'context', which it is not given"),
    ("{% block user %}{{ question }}\n{% for s in sources %}\n{{ s.titel }}{% endfor %}{% endblock %}", 3,
     "titel"),
])
def test_a_broken_template_is_reported_with_its_file_and_line(tmp_path: Path, text: str, where: int,
                                                              why: str) -> None:
    with pytest.raises(FlightdeckError, match=rf"broken\.j2:{where}: .*{why}"):
        _broken(tmp_path, text).answer_messages("q?", HITS[:1])


def test_a_template_names_its_messages_and_a_missing_one_is_reported(tmp_path: Path) -> None:
    with pytest.raises(FlightdeckError, match=r"broken\.j2: a prompt template defines either .* defines system"):
        _broken(tmp_path, "{% block system %}{{ system_prompt }}{% endblock %}").answer_messages("q?", HITS[:1])
    with pytest.raises(FlightdeckError, match="no template file at .*missing.j2"):
        load_template(str(tmp_path / "missing.j2"))
    with pytest.raises(FlightdeckError, match="no shipped template 'grounded_chatt'; the shipped ones are .*grounded_"):
        load_template("grounded_chatt")


def test_the_sandbox_keeps_a_template_from_reaching_python(tmp_path: Path) -> None:
    gen = _broken(tmp_path, "{% block user %}{{ question.__class__.__mro__ }}{{ not_found }}{% endblock %}")
    with pytest.raises(FlightdeckError, match=r"broken\.j2:1: access to attribute '__class__' .* is unsafe"):
        gen.answer_messages("q?", HITS[:1])
