"""Prompt templates: Jinja2 files rendered in a sandbox, and versioned by the SHA-256 of their text.

A template is a shipped name (a file of ``prompts/``, such as ``grounded_chat``) or the path of a ``.j2`` file.
It defines the messages it makes as blocks: ``system`` and ``user`` (a chat), or ``prompt`` (one text for a base
model to continue); text outside the blocks is ignored. The values (the question, the documents) are passed as
variables and are never part of the template's source, so a document that holds ``{{ ... }}`` or ``{% ... %}``
comes out as written. The environment is sandboxed and undefined names are errors: a template that does not
parse, or names a variable its use does not provide, fails with a :class:`FlightdeckError` naming its file and
line, when it is loaded.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from types import TracebackType
from typing import Any

from flightdeck.errors import FlightdeckError

__all__ = ["PromptTemplate", "load_template", "is_template_path", "shipped_templates", "PROMPTS_DIR",
           "GROUNDED_VARIABLES", "DEFAULT_GROUNDED"]

#: The folder of the shipped templates.
PROMPTS_DIR = Path(__file__).parent / "prompts"
#: The variables a grounded-answer template is given (each source: id, title, text, uri, chunk_id).
GROUNDED_VARIABLES = frozenset({"system_prompt", "question", "sources", "not_found"})
#: The shipped grounded-answer template of each prompt format.
DEFAULT_GROUNDED = {"chat": "grounded_chat", "completion": "grounded_completion"}
_BLOCKS = ("system", "user", "prompt")


def shipped_templates() -> list[str]:
    """The names of the shipped templates."""
    return sorted(p.stem for p in PROMPTS_DIR.glob("*.j2"))


def is_template_path(ref: str) -> bool:
    """Whether a ``prompt_template`` setting is a file path (a ``.j2`` name or one with a folder) rather than
    the name of a shipped template."""
    return ref.endswith(".j2") or "/" in ref or "\\" in ref


@dataclass(frozen=True)
class PromptTemplate:
    """A loaded template: what it is called (the shipped name or the path), its text and that text's SHA-256."""

    name: str
    text: str
    sha256: str
    filename: str
    variables: frozenset[str]
    _template: Any = field(repr=False, compare=False)

    @property
    def record(self) -> dict[str, str]:
        """What an answer records of the prompt it was made with: ``{"template": ..., "sha256": ...}``."""
        return {"template": self.name, "sha256": self.sha256}

    def render_messages(self, **values: Any) -> list[dict[str, str]]:
        """The chat messages of the template's blocks: ``system`` then ``user``, or ``prompt`` as one user
        message (a base model's whole text)."""
        blocks = self._render_blocks(values)
        if "prompt" in blocks:
            return [{"role": "user", "content": blocks["prompt"]}]
        messages = [{"role": "system", "content": blocks["system"]}] if "system" in blocks else []
        return [*messages, {"role": "user", "content": blocks["user"]}]

    def _render_blocks(self, values: Any) -> dict[str, str]:
        from jinja2 import TemplateError

        missing = self.variables - values.keys()
        if missing:
            raise FlightdeckError(f"{self.filename}: rendered without {', '.join(sorted(missing))}")
        template = self._template
        try:
            context = template.new_context(values)
            return {name: "".join(template.blocks[name](context)) for name in _BLOCKS if name in template.blocks}
        except TemplateError as e:
            line = _template_line(e.__traceback__, template)
            raise FlightdeckError(f"{self.filename}{f':{line}' if line else ''}: {e}") from e


def load_template(ref: str, variables: frozenset[str] = GROUNDED_VARIABLES) -> PromptTemplate:
    """The template ``ref`` (a shipped name, or the path of a .j2 file), parsed and checked against the
    ``variables`` its use provides. A file is read again once it changes."""
    if is_template_path(ref):
        path = Path(ref).expanduser()
        try:
            stamp = path.stat().st_mtime_ns
        except OSError as e:
            raise FlightdeckError(f"model.generator.prompt_template: no template file at {path} ({e.strerror}); "
                                  f"give a .j2 path (relative to the spec's folder) or a shipped name: "
                                  f"{', '.join(shipped_templates())}") from e
        return _load(ref, str(path), stamp, variables)
    path = PROMPTS_DIR / f"{ref}.j2"
    if not path.is_file():
        raise FlightdeckError(f"model.generator.prompt_template: no shipped template {ref!r}; the shipped ones are "
                              f"{', '.join(shipped_templates())}, or give the path of a .j2 file")
    return _load(ref, str(path), path.stat().st_mtime_ns, variables)


@lru_cache(maxsize=64)
def _load(name: str, filename: str, _stamp: int, variables: frozenset[str]) -> PromptTemplate:
    from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, meta, nodes
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    try:
        text = Path(filename).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise FlightdeckError(f"{filename}: the prompt template cannot be read: {e}") from e
    env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
    try:
        tree = env.parse(text, name=name, filename=filename)
        template = env.template_class.from_code(env, env.compile(tree, name=name, filename=filename),
                                                env.make_globals(None), None)
    except TemplateSyntaxError as e:
        raise FlightdeckError(f"{filename}:{e.lineno}: the prompt template does not parse: {e.message}") from e
    unknown = meta.find_undeclared_variables(tree) - variables - set(env.globals)
    if unknown:
        first = min((node.lineno, node.name) for node in tree.find_all(nodes.Name) if node.name in unknown)
        raise FlightdeckError(f"{filename}:{first[0]}: the prompt template uses {first[1]!r}, which it is not given; "
                              f"its variables are {', '.join(sorted(variables))}")
    defined = [b for b in _BLOCKS if b in template.blocks]
    if not ({"user", "prompt"} & set(defined)) or ("prompt" in defined and len(defined) > 1):
        raise FlightdeckError(f"{filename}: a prompt template defines either the blocks 'system' and 'user' (a chat) "
                              "or the block 'prompt' (one text to continue); this one defines "
                              f"{', '.join(defined) or 'none of them'}")
    loaded = PromptTemplate(name, text, hashlib.sha256(text.encode("utf-8")).hexdigest(), filename, variables,
                            template)
    try:  # a typo in an attribute (source.titel) shows now, not at the first question
        loaded._render_blocks(_SAMPLE if variables == GROUNDED_VARIABLES else {v: "" for v in variables})
    except FlightdeckError as e:
        if not isinstance(e.__cause__, TemplateError):
            raise
        raise FlightdeckError(f"{e} (checked with a sample question and source)") from e.__cause__
    return loaded


_SAMPLE: dict[str, Any] = {
    "system_prompt": "You answer from the sources.", "question": "What does a widget need?",
    "not_found": "Not found in the documents.",
    "sources": [{"id": 1, "title": "Widgets", "text": "A widget needs a frame.", "uri": "file:///w.md",
                 "chunk_id": "c1"}],
}


def _template_line(tb: TracebackType | None, template: Any) -> int | None:
    """The template line of an error raised while rendering: the compiled code's line mapped back."""
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == template.filename:
            line = template.get_corresponding_lineno(tb.tb_lineno)
        tb = tb.tb_next
    return line
