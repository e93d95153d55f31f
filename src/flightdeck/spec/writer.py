"""Writing a spec: a commented ``flightdeck.yaml`` that reads like the filled-in checklist.

Every phase and every section of the seed is written, in seed order, under a comment with the seed's
wording and the status of each option in this build. Chosen sections are real YAML; unchosen ones are
commented out (an unset section takes the embedded default), so that choosing one later is uncommenting
one line. Values are written exactly as given: a ``${ENV_VAR}`` reference stays a reference.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from flightdeck.registry import Category, registry
from flightdeck.spec.catalog import Phase, Section, catalog
from flightdeck.spec.models import (
    EMBEDDED_DEFAULTS,
    PROVIDER_SECTIONS,
    PROVIDER_SETTINGS,
    SearchSettings,
    section_categories,
)
from flightdeck.spec.status import option_usable

__all__ = ["render_spec", "default_choices", "default_sources", "provider_for_option", "SETTINGS_KEYS", "format_value"]

# Keys that are not checklist sections but carry settings; a ``choices`` entry with one of these paths
# replaces the default written here.
SETTINGS_KEYS: tuple[str, ...] = ("data.chunking", "retrieval.search", "model.generator")

_WIDTH = 118
_PLAIN = re.compile(r"^[A-Za-z_./$][A-Za-z0-9_./@$-]*$")
# Plain words that YAML 1.1 or 1.2 would read as something other than a string.
_RESERVED = {"y", "n", "yes", "no", "on", "off", "true", "false", "null", "none", "~"}


def default_choices() -> dict[str, object]:
    """The embedded stack as ``choices``: every checklist section that has an embedded default."""
    sections = {s.path for s in catalog().sections}
    return {path: (list(v) if isinstance(v, list) else v)
            for path, v in EMBEDDED_DEFAULTS.items() if path in sections}


def default_sources(path: str = "./docs") -> list[dict[str, object]]:
    """The embedded stack's one source: the ``files`` provider over a folder of documents."""
    return [{"provider": "files", "path": path}]


def format_value(value: Any) -> str:
    """``value`` as one line of YAML (flow style for lists and maps); strings are quoted only when needed."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else json.dumps(str(value))
    if isinstance(value, str):
        if _PLAIN.match(value) and value.lower() not in _RESERVED and not value.startswith("-"):
            return value
        # A JSON string is a valid YAML double-quoted scalar.
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{format_value(str(k))}: {format_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    raise TypeError(f"cannot write a value of type {type(value).__name__} to a spec: {value!r}")


def _wrap(indent: str, head: str, items: list[str], sep: str = " | ") -> list[str]:
    """A comment line ``head item | item | …`` wrapped at the page width with aligned continuations."""
    lines: list[str] = []
    current = f"{indent}# {head}"
    fresh = True  # nothing of items on the current line yet
    for item in items:
        if not fresh and len(current) + len(sep) + len(item) > _WIDTH:
            lines.append(current + sep.rstrip())
            current, fresh = f"{indent}#     ", True
        current += item if fresh else sep + item
        fresh = False
    lines.append(current.rstrip())
    return lines


def _option_marks(section: Section) -> list[str]:
    marks = []
    for option in section.options:
        state = option_usable(option.key).state
        marks.append(option.id if state == "ready" else f"{option.id} ({state})")
    return marks


def _section_example(section: Section, sources_example: list[dict[str, object]]) -> Any:
    """The value shown, commented out, for a section that was not chosen."""
    if section.path == "data.sources":
        return sources_example
    default = EMBEDDED_DEFAULTS.get(section.path)
    if default is not None:
        return default
    ready = [o.id for o in section.options if option_usable(o.key).state == "ready"]
    first = ready[0] if ready else section.options[0].id
    if section.path in PROVIDER_SECTIONS:
        first = provider_for_option(section, first)
    return [first] if section.multi else first


def provider_for_option(section: Section, option_id: str) -> str:
    """The provider that implements an option of a provider section (its name is usually the option id)."""
    categories = section_categories(section.path)
    for flavor in registry().for_option(f"{section.path}.{option_id}"):
        if flavor.category in categories:
            return flavor.name
    return option_id


def _names_with_status(category: Category) -> list[str]:
    reg = registry()
    out = []
    for name in reg.names(category):
        flavor = reg.get(category, name)
        out.append(name if not reg.missing_modules(flavor) else f"{name} (needs extra)")
    return out


def _settings_lines(phase: Phase, choices: Mapping[str, object]) -> list[str]:
    """The non-checklist settings keys of a phase, set to the given value or the embedded default."""
    lines: list[str] = []
    if phase.key == "data":
        value = choices.get("data.chunking", {"provider": EMBEDDED_DEFAULTS["data.chunking"], "size": 256,
                                              "overlap": 32})
        lines += _wrap("  ", "chunking: the chunker used by 'chunking' in 1.3 (not a checklist section): ",
                       _names_with_status(PROVIDER_SETTINGS["data.chunking"]))
        lines.append("  #   settings of recursive: size (tokens per chunk), overlap, separators, include_heading")
        lines.append(f"  chunking: {format_value(value)}")
    elif phase.key == "retrieval":
        system = choices.get("retrieval.system")
        hybrid = isinstance(system, (list, tuple)) and "hybrid_search" in system
        value = choices.get("retrieval.search", {"mode": "hybrid" if hybrid else "vector", "k": 10})
        fields = [f for f in SearchSettings.model_fields if f != "mode"]
        lines.append("  # search: how `search` and `ask` retrieve (not a checklist section):")
        lines.append("  #   mode: hybrid (needs hybrid_search in 2.3) | vector | keyword")
        lines += _wrap("  ", "  other settings: ", fields, sep=", ")
        lines.append(f"  search: {format_value(value)}")
        transform = choices.get("retrieval.query_transformation")
        if transform is None and isinstance(system, (list, tuple)) and "query_transformation" in system:
            transform = {"provider": "multi_query", "queries": 3}  # chosen in 2.3: a working default
        lines += _wrap("  ", "query_transformation: for query_transformation in 2.3; needs an LLM generator: ",
                       _names_with_status(PROVIDER_SETTINGS["retrieval.query_transformation"]))
        lines.append(f"  query_transformation: {format_value(transform)}" if transform else
                     "  # query_transformation: {provider: multi_query, queries: 3}")
    elif phase.key == "model":
        system = choices.get("retrieval.system")
        # query transformation needs a generator that writes text: the local LLM, unless one was chosen
        wants_llm = isinstance(system, (list, tuple)) and "query_transformation" in system
        value = choices.get("model.generator", "llama_cpp" if wants_llm else EMBEDDED_DEFAULTS["model.generator"])
        lines += _wrap("  ", "generator: the generator that writes answers (not a checklist section): ",
                       _names_with_status(PROVIDER_SETTINGS["model.generator"]))
        lines.append(f"  generator: {format_value(value)}")
    return lines


def _comment_lines(phase: Phase) -> list[str]:
    """Commented examples of a phase's non-checklist keys that have no value to write."""
    lines: list[str] = []
    if phase.key == "evaluation":
        lines.append("  # sets: JSONL question files for `flightdeck eval` (not a checklist section), one per line:")
        lines.append("  #   {question, reference_answer, reference_sources: [page], answerable, tags}")
        lines.append("  # sets: [eval/questions.jsonl]")
        lines.append("  # gates: `flightdeck eval --gate` exits 1 when one is missed, e.g.")
        lines.append("  # gates: {\"ndcg@10\": \">= 0.7\", refusal_rate: \">= 0.8\", false_refusal_rate: \"<= 0.1\"}")
    return lines


def _section_lines(section: Section, value: Any, chosen: bool, sources_example: list[dict[str, object]]) -> list[str]:
    lines = _wrap("  ", f"{section.heading}: ", _option_marks(section))
    if section.note:
        lines.append(f"  #   {section.note}")
    if section.path == "data.sources":
        providers = [f"{o.id} is provider {provider_for_option(section, o.id)}" for o in section.options
                     if provider_for_option(section, o.id) != o.id]
        lines.append("  #   each entry is one provider with its settings, e.g. {provider: files, path: ./docs}")
        if providers:
            lines += _wrap("  ", "  ", providers, sep="; ")
    if not chosen:
        example = _section_example(section, sources_example)
        lines.append(f"  # {section.key}: {format_value(example)}")
    elif section.path == "data.sources" and isinstance(value, list) and value:
        lines.append(f"  {section.key}:")
        lines += [f"    - {format_value(entry)}" for entry in value]
    else:
        lines.append(f"  {section.key}: {format_value(value)}")
    return lines


def render_spec(project: str, choices: dict[str, object], *, sources: list[dict] | None = None) -> str:
    """A commented ``flightdeck.yaml`` for ``project``.

    ``choices`` maps ``phase.section`` to an option id (single-select) or a list of ids (multi-select);
    for provider sections a value may also be ``{provider: name, ...settings}``. A section that is absent
    or ``None`` is written commented out (it takes the embedded default); an empty list is written as
    ``[]`` (explicitly none). ``data.chunking``, ``retrieval.search`` and ``model.generator`` may be given
    to replace the defaults written for those settings. ``sources`` (provider dicts) go under
    ``data.sources`` and win over a ``data.sources`` entry of ``choices``.
    """
    cat = catalog()
    known = {s.path for s in cat.sections} | set(SETTINGS_KEYS)
    unknown = sorted(set(choices) - known)
    if unknown:
        raise ValueError(f"unknown spec keys: {', '.join(unknown)}. Valid: phase.section paths of the checklist"
                         f" (e.g. retrieval.vector_database) or {', '.join(SETTINGS_KEYS)}.")
    values: dict[str, Any] = dict(choices)
    if sources is not None:
        values["data.sources"] = list(sources)
    sources_example = list(sources) if sources else default_sources()

    out = [
        f"# flightdeck.yaml of {project}: the filled-in AI Engineering Master Workflow Checklist.",
        "# One top-level key per phase, one key per checklist section. Chosen sections are set; the others are",
        "# commented out and take the embedded defaults; uncomment a line to choose. Next to each section are its",
        "# options as the spec spells them, with their status in this build when not ready",
        "# ('needs extra': pip install the named extra; 'planned': not implemented yet).",
        "# Secrets are ${ENV_VAR} references, never values.",
        "#",
        "#   flightdeck validate    check this file: every problem with file:line and the valid choices",
        "#   flightdeck checklist   the whole checklist with this project's choices ticked",
        "#   flightdeck run         ingest, chunk, embed and index, as this file says",
        "",
        f"project: {format_value(project)}",
        "# workspace: .flightdeck     # where runs, indexes and releases are kept, relative to this file",
    ]
    for phase in cat.phases:
        body: list[str] = []
        any_set = False
        for section in phase.sections:
            value = values.get(section.path)
            chosen = value is not None
            any_set = any_set or chosen
            body += _section_lines(section, value, chosen, sources_example)
        settings = _settings_lines(phase, values)
        out.append("")
        if any_set or settings:
            out.append(f"# {phase.heading}")
            out.append(f"{phase.key}:")
            out += body + settings + _comment_lines(phase)
        else:
            out.append(f"# {phase.heading}: nothing chosen; to choose, replace {{}} and uncomment sections below")
            out.append(f"{phase.key}: {{}}")
            out += body + _comment_lines(phase)
    return "\n".join(out) + "\n"
