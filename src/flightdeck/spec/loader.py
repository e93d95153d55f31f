"""Loading a spec file with line marks and checking it, reporting every problem at once.

Checks, in order: YAML syntax; checklist sections (known values, single vs multi-select, planned or
not-installed options, provider settings validated by each provider's config class); the structure of
everything else (unknown keys, types); then the cross-field rules of ``rules.py``. Each problem carries
``file:line:column``, the location in the spec, and what to do.
"""

from __future__ import annotations

import difflib
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.events import AliasEvent, CollectionEndEvent, CollectionStartEvent, MappingStartEvent, ScalarEvent
from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode
from ruamel.yaml.reader import ReaderError

from flightdeck.errors import SpecError, SpecProblem
from flightdeck.registry import Category, registry
from flightdeck.spec.catalog import Section, catalog
from flightdeck.spec.loaded import LoadedSpec, Loc
from flightdeck.spec.models import (
    PROVIDER_SECTIONS,
    PROVIDER_SETTINGS,
    provider_category,
    section_categories,
    spec_model,
)
from flightdeck.spec.status import OptionStatus, option_usable

__all__ = ["LoadedSpec", "load_spec", "check_spec", "SPEC_FILENAME", "find_spec_file"]

SPEC_FILENAME = "flightdeck.yaml"
#: A spec is a few levels deep. ruamel composes (and pydantic validates) recursively, so a file nested
#: hundreds of levels deep would end in a RecursionError instead of a problem with a line number.
MAX_DEPTH = 50
#: Values of the spec once every alias (``*name``) is expanded: a spec has hundreds; an alias bomb
#: ("billion laughs": each level repeats the previous one ten times) has billions and would hang the check.
MAX_VALUES = 100_000


def find_spec_file(explicit: str | Path | None = None, cwd: Path | None = None) -> Path:
    """The spec to use: ``--spec PATH`` (a file or a folder holding flightdeck.yaml), else ./flightdeck.yaml."""
    base = Path(explicit) if explicit else (cwd or Path.cwd())
    candidate = base / SPEC_FILENAME if base.is_dir() else base
    if not candidate.is_file():
        where = f"{explicit}" if explicit else f"{base}"
        raise SpecError([SpecProblem(str(candidate), "", (
            f"no spec found at {where}. Run `flightdeck init` to write one, or pass --spec PATH.")
        )])
    return candidate.resolve()


def _plain(node: Any, loc: Loc, positions: dict[Loc, tuple[int, int]]) -> Any:
    """Convert ruamel's round-trip nodes to plain data, recording 1-based (line, col) of each value."""
    if isinstance(node, CommentedMap):
        out = {}
        for key in node:
            try:
                line, col = node.lc.value(key)
                positions[(*loc, str(key))] = (line + 1, col + 1)
                kline, kcol = node.lc.key(key)
                positions[(*loc, str(key), "<key>")] = (kline + 1, kcol + 1)
            except (KeyError, TypeError, AttributeError):
                pass
            out[str(key)] = _plain(node[key], (*loc, str(key)), positions)
        return out
    if isinstance(node, CommentedSeq):
        out_list = []
        for i, item in enumerate(node):
            try:
                line, col = node.lc.item(i)
                positions[(*loc, i)] = (line + 1, col + 1)
            except (KeyError, TypeError, AttributeError):
                pass
            out_list.append(_plain(item, (*loc, i), positions))
        return out_list
    if isinstance(node, str):
        return str(node)
    return node


class _Checker:
    def __init__(self, path: Path, positions: dict[Loc, tuple[int, int]]) -> None:
        self.path = path
        self.positions = positions
        self.problems: list[SpecProblem] = []
        self.reported: set[Loc] = set()

    def add(self, loc: Loc, message: str, *, key: bool = False) -> None:
        pos = None
        probe = tuple(loc)
        if key and (*probe, "<key>") in self.positions:
            pos = self.positions[(*probe, "<key>")]
        while pos is None and probe:
            pos = self.positions.get(probe)
            probe = probe[:-1]
        # A value with no position of its own nor of a parent (a required top-level key that is missing)
        # is a problem of the whole file: its first line.
        line, col = pos if pos else (1, 1)
        self.problems.append(SpecProblem(str(self.path), ".".join(str(p) for p in loc), message, line, col))
        self.reported.add(tuple(loc))

    def covered(self, loc: Loc) -> bool:
        return any(tuple(loc[: len(r)]) == r for r in self.reported)


def _did_you_mean(value: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(value, choices, n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""


def _status_problem(section: Section, option_id: str, status: OptionStatus) -> str | None:
    if status.state == "ready":
        return None
    ready = [o.id for o in section.options if option_usable(o.key).state == "ready"]
    if status.state == "needs extra":
        return f"'{option_id}' ({section.heading}) is not installed: {status.detail}."
    return (f"'{option_id}' ({section.heading}) is planned: {status.detail}."
            f" Ready choices: {', '.join(ready) or 'none yet'}.")


def _check_provider(ck: _Checker, loc: Loc, value: Any, category: Category, section: Section | None) -> None:
    """One provider reference: a known name, a usable option, and settings its config class accepts."""
    if isinstance(value, str):
        name, settings = value, {}
    elif isinstance(value, dict):
        if "provider" not in value:
            ck.add(loc, "a provider entry needs a 'provider:' key, e.g. {provider: files, path: ./docs}")
            return
        name, settings = value["provider"], {k: v for k, v in value.items() if k != "provider"}
    else:
        ck.add(loc, f"expected a provider name or {{provider: name, ...settings}}, got {value!r}")
        return
    if section is not None:  # a section may take another category too (data.sources: the synthesizer)
        category = provider_category(section.path, str(name)) or category
    if category in (Category.SOURCE, Category.SYNTHESIZER) and "name" in settings:
        # `name` is every source's label (the prefix of its document ids), handled by flightdeck itself
        label = settings.pop("name")
        if not isinstance(label, str) or not label or "/" in label:
            ck.add((*loc, "name"), f"a source name is a non-empty word without '/', got {label!r}")
    reg = registry()
    names = sorted({n for c in (section_categories(section.path) if section else (category,)) for n in reg.names(c)})
    if name not in names:
        option = section.option(str(name)) if section else None
        if option is not None and section is not None:
            msg = _status_problem(section, option.id, option_usable(option.key))
            if msg:
                ck.add(loc, msg)
                return
        planned = [o.id for o in section.options if option_usable(o.key).state == "planned"] if section else []
        hint = f" Planned, not yet available: {', '.join(planned)}." if planned else ""
        ck.add(loc, f"unknown {category.value} '{name}'. Available: {', '.join(names)}."
                    + _did_you_mean(str(name), names) + hint)
        return
    option = section.option(str(name)) if section else None
    if option is not None and section is not None:
        # a registered provider whose checklist option is still planned (lakefs: no server to test against)
        status = option_usable(option.key)
        if status.state == "planned":
            ck.add(loc, _status_problem(section, option.id, status) or "")
            return
    flavor = reg.get(category, name)
    missing = reg.missing_modules(flavor)
    if missing:
        ck.add(loc, f"{category.value} '{name}' needs: {reg.install_hint(flavor)} (missing: {', '.join(missing)})")
        return
    config_cls = reg.config_class(category, name)
    if config_cls is None:
        if settings:
            ck.add(loc, f"{category.value} '{name}' takes no settings; remove: {', '.join(settings)}")
        return
    try:
        config_cls(**settings)
    except ValidationError as exc:
        base = loc if isinstance(value, dict) else loc
        for err in exc.errors():
            sub = tuple(str(p) for p in err["loc"])
            msg = _message(err)
            if err["type"] == "extra_forbidden":
                valid = sorted(config_cls.model_fields)
                msg = f"unknown setting '{sub[-1]}' for {category.value} '{name}'. Valid: {', '.join(valid)}." \
                      + _did_you_mean(sub[-1], valid)
            ck.add((*base, *sub), msg, key=err["type"] == "extra_forbidden")


def _check_sections(ck: _Checker, raw: dict[str, Any]) -> None:
    for section in catalog().sections:
        phase_raw = raw.get(section.phase)
        if not isinstance(phase_raw, dict) or section.key not in phase_raw:
            continue
        value = phase_raw[section.key]
        loc: Loc = (section.phase, section.key)
        if value is None:
            continue
        category = PROVIDER_SECTIONS.get(section.path)
        if not section.multi:
            if isinstance(value, list):
                if len(value) == 1:
                    ck.add(loc, f"{section.heading} takes one value, not a list: write "
                                f"`{section.key}: {value[0]}`.")
                    continue
                ck.add(loc, f"{section.heading} takes one value, got {len(value)}: "
                            f"{', '.join(str(v.get('provider', v) if isinstance(v, dict) else v) for v in value)}."
                            f" Choose one of: {', '.join(section.option_ids)}.")
                continue
            items = [(loc, value)]
        else:
            if not isinstance(value, list):
                ck.add(loc, f"{section.heading} takes a list, e.g. [{section.option_ids[0]}]; got {value!r}.")
                continue
            items = [((*loc, i), v) for i, v in enumerate(value)]
        seen: set[str] = set()
        for item_loc, item in items:
            if category is not None:
                _check_provider(ck, item_loc, item, category, section)
                continue
            if not isinstance(item, str):
                ck.add(item_loc, f"expected an option id of {section.heading}; got {item!r}.")
                continue
            if item in seen:
                ck.add(item_loc, f"'{item}' is listed twice.")
                continue
            seen.add(item)
            option = section.option(item)
            if option is None:
                ck.add(item_loc, f"'{item}' is not a choice of {section.heading}. Valid choices: "
                                 f"{', '.join(section.option_ids)}." + _did_you_mean(item, section.option_ids))
                continue
            msg = _status_problem(section, item, option_usable(option.key))
            if msg:
                ck.add(item_loc, msg)
    for path, category in PROVIDER_SETTINGS.items():
        phase, key = path.split(".")
        phase_raw = raw.get(phase)
        if isinstance(phase_raw, dict) and phase_raw.get(key) is not None:
            _check_provider(ck, (phase, key), phase_raw[key], category, None)


def _check_structure(ck: _Checker, raw: dict[str, Any]) -> BaseModel | None:
    model = spec_model()
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        for err in exc.errors():
            loc = _data_loc(raw, tuple(err["loc"]))
            if ck.covered(loc):
                continue
            if err["type"] == "extra_forbidden":
                parent = _model_at(model, loc[:-1])
                valid = sorted(parent.model_fields) if parent else []
                ck.add(loc, f"unknown key '{loc[-1]}'. Valid keys here: {', '.join(valid)}."
                            + _did_you_mean(str(loc[-1]), valid), key=True)
            elif err["type"] == "missing":
                ck.add(loc, f"'{loc[-1]}' is required.")
            else:
                ck.add(loc, _message(err))
        return None


def _message(err: Any) -> str:
    """A pydantic error's message for people: our validators' own words, without pydantic's "Value error, "."""
    msg = str(err["msg"])
    return msg.removeprefix("Value error, ") if err["type"] == "value_error" else msg


def _data_loc(raw: Any, loc: Loc) -> Loc:
    """``loc`` of a pydantic error without the names pydantic gives union branches ("function-before[...]").

    Parts that are keys (or indexes) of the data are always kept, so that a key of the user's own that looks
    like a branch name (``"[": 1``) is still reported where it is.
    """
    out: list[str | int] = []
    node = raw
    for part in loc:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        elif isinstance(part, str) and ("[" in part or part.startswith("function")):
            continue
        else:
            node = None  # not in the data: a missing key
        out.append(part)
    return tuple(out)


def _model_at(model: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    current: Any = model
    for part in loc:
        fld = getattr(current, "model_fields", {}).get(part)
        if fld is None:
            return None
        current = fld.annotation
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _byte_position(data: bytes, offset: int) -> tuple[int, int]:
    """1-based (line, column) of byte ``offset``; the column counts characters."""
    start = data.rfind(b"\n", 0, offset) + 1
    return data.count(b"\n", 0, offset) + 1, len(data[start:offset].decode("utf-8", errors="replace")) + 1


def _shape_problem(text: str) -> tuple[str, int, int] | None:
    """Nesting deeper than :data:`MAX_DEPTH`, an alias bomb, a key that is a list or mapping, or an integer
    too long for ``int()``, found on the event stream, which ruamel parses without recursion and without
    expanding aliases."""
    values = 0
    expands: dict[str, int] = {}  # anchor -> number of values it stands for
    collections: set[str] = set()  # anchors of lists and mappings
    # collections being read: [anchor, values before it, is a mapping, children so far]
    open_: list[list[Any]] = []
    int_digits = sys.get_int_max_str_digits()
    for event in YAML(typ="rt").parse(text):
        mark = event.start_mark
        where = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        if isinstance(event, (CollectionStartEvent, ScalarEvent, AliasEvent)) and open_:
            parent = open_[-1]
            is_key = parent[2] and parent[3] % 2 == 0
            parent[3] += 1
            if is_key and (isinstance(event, CollectionStartEvent) or getattr(event, "anchor", None) in collections
                           and isinstance(event, AliasEvent)):
                # ruamel cannot even hash some of them (TypeError), and no key of a spec is one
                return ("a key that is a list or a mapping (`? ...`); keys of a spec are names", *where)
        if isinstance(event, CollectionStartEvent):
            if len(open_) >= MAX_DEPTH:
                return (f"nested more than {MAX_DEPTH} levels deep; a spec needs a handful", *where)
            open_.append([event.anchor, values, isinstance(event, MappingStartEvent), 0])
            values += 1
        elif isinstance(event, CollectionEndEvent):
            anchor, before, _, _ = open_.pop()
            if anchor is not None:
                expands[anchor] = values - before
                collections.add(anchor)
        elif isinstance(event, ScalarEvent):
            values += 1
            if event.anchor is not None:
                expands[event.anchor] = 1
                collections.discard(event.anchor)
            digits = event.value.lstrip("+-").replace("_", "")
            if event.style is None and int_digits and len(digits) > int_digits and digits.isdigit():
                return (f"a number with {len(digits):,} digits; write it in quotes if it is text", *where)
        elif isinstance(event, AliasEvent):
            values += expands.get(event.anchor, 1)
        if values > MAX_VALUES:
            return (f"the aliases (*{getattr(event, 'anchor', None) or 'name'}) expand the spec to more than "
                    f"{MAX_VALUES:,} values (an alias bomb?); write the values out instead", *where)
    return None


def _unreadable_value(text: str) -> tuple[int, int]:
    """(line, column) of the first value ruamel cannot construct (``!!int x``, ``2001-13-45``): its errors for
    those (ValueError, IndexError, KeyError) carry no position. (1, 1) when none is found."""
    yaml = YAML(typ="rt")
    try:
        root = yaml.compose(text)
    except Exception:  # composing already failed: no better position to give
        return 1, 1
    stack, seen = ([root] if root is not None else []), set()
    while stack:
        node = stack.pop()
        if id(node) in seen:  # an alias: the same node again
            continue
        seen.add(id(node))
        if isinstance(node, ScalarNode):
            try:
                yaml.constructor.construct_object(node, deep=True)
            except Exception:  # any failure is the answer
                return node.start_mark.line + 1, node.start_mark.column + 1
        elif isinstance(node, SequenceNode):
            stack.extend(reversed(node.value))
        elif isinstance(node, MappingNode):
            stack.extend(n for pair in reversed(node.value) for n in reversed(pair))
    return 1, 1


def _read_yaml(path: Path, text: str) -> tuple[Any, SpecProblem | None]:
    """The round-trip YAML of ``text``, or the problem that stops it from being read, with its position."""
    try:
        shape = _shape_problem(text)
        if shape is not None:
            message, line, col = shape
            return None, SpecProblem(str(path), "", message, line, col)
        return YAML(typ="rt").load(text), None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        return None, SpecProblem(str(path), "", f"invalid YAML: {exc.problem or exc}", line, col)
    except ReaderError as exc:  # a control character (NUL, BEL...) that YAML allows nowhere in a file
        char = f"U+{exc.character:04X}" if isinstance(exc.character, int) else repr(exc.character)
        offset = max(min(exc.position, len(text)), 0)
        line = text.count("\n", 0, offset) + 1
        col = offset - (text.rfind("\n", 0, offset) + 1) + 1
        return None, SpecProblem(str(path), "", f"invalid YAML: character {char} is not allowed "
                                                f"({exc.reason}); remove it", line, col)
    except Exception as exc:  # ruamel's constructors fail with ValueError, IndexError, KeyError...
        line, col = _unreadable_value(text)
        return None, SpecProblem(str(path), "", f"invalid YAML: cannot read this value ({type(exc).__name__}: "
                                                f"{exc}); write it in quotes if it is text", line, col)


def check_spec(path: Path, text: str | None = None) -> tuple[LoadedSpec | None, list[SpecProblem]]:
    """Load and check the spec at ``path``; returns the spec (when valid) and every problem found."""
    path = Path(path)
    if text is None:
        raw_bytes = path.read_bytes()
        try:
            text = raw_bytes.decode("utf-8")
        except UnicodeDecodeError as exc:
            line, col = _byte_position(raw_bytes, exc.start)
            return None, [SpecProblem(str(path), "", (
                f"not UTF-8 text (byte {raw_bytes[exc.start]:#04x} cannot be decoded); save the spec as UTF-8"),
                line, col)]
    positions: dict[Loc, tuple[int, int]] = {}
    data, problem = _read_yaml(path, text)
    if problem is not None:
        return None, [problem]
    if data is None:
        data = CommentedMap()
    if not isinstance(data, CommentedMap):
        return None, [SpecProblem(str(path), "", "a spec is a mapping of keys (project:, scoping:, data:…)", 1, 1)]
    raw = _plain(data, (), positions)
    ck = _Checker(path, positions)
    for phase in catalog().phases:
        if phase.key in raw and raw[phase.key] is not None and not isinstance(raw[phase.key], dict):
            ck.add((phase.key,), f"'{phase.key}' ({phase.heading}) is a mapping of its sections")
    _check_sections(ck, raw)
    spec = _check_structure(ck, {k: v for k, v in raw.items() if v is not None})
    loaded = LoadedSpec(spec, path, raw, positions) if spec is not None else None
    if loaded is not None:
        from flightdeck.spec.rules import check_rules

        for loc, message in check_rules(loaded):
            # a value already reported (an unknown provider, a bad setting) would only repeat as noise here
            if not ck.covered(loc):
                ck.add(loc, message)
    if ck.problems:
        return None, ck.problems
    return loaded, []


def load_spec(path: str | Path | None = None) -> LoadedSpec:
    """Load a valid spec or raise :class:`SpecError` listing every problem."""
    spec_path = find_spec_file(path)
    loaded, problems = check_spec(spec_path)
    if problems:
        raise SpecError(problems)
    assert loaded is not None
    return loaded
