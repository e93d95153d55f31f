"""Loading a spec file with line marks and checking it, reporting every problem at once.

Checks, in order: YAML syntax; checklist sections (known values, single vs multi-select, planned or
not-installed options, provider settings validated by each provider's config class); the structure of
everything else (unknown keys, types); then the cross-field rules of ``rules.py``. Each problem carries
``file:line:column``, the location in the spec, and what to do.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from flightdeck.errors import SpecError, SpecProblem
from flightdeck.registry import Category, registry
from flightdeck.spec.catalog import Section, catalog
from flightdeck.spec.models import PROVIDER_SECTIONS, PROVIDER_SETTINGS, spec_model
from flightdeck.spec.status import OptionStatus, option_status

__all__ = ["LoadedSpec", "load_spec", "check_spec", "SPEC_FILENAME", "find_spec_file"]

SPEC_FILENAME = "flightdeck.yaml"
Loc = tuple[str | int, ...]


@dataclass
class LoadedSpec:
    """A validated spec, the file it came from, and where each value sits in that file."""

    spec: Any  # an instance of spec_model()
    path: Path
    raw: dict[str, Any]
    positions: dict[Loc, tuple[int, int]] = field(default_factory=dict)

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def position(self, loc: Loc) -> tuple[int, int] | None:
        """(line, column), 1-based, of the value at ``loc`` or of its closest parent."""
        loc = tuple(loc)
        while loc:
            if loc in self.positions:
                return self.positions[loc]
            loc = loc[:-1]
        return None


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
        line, col = pos if pos else (None, None)
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
    ready = [o.id for o in section.options if option_status(o.key).state == "ready"]
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
    if category == Category.SOURCE and "name" in settings:
        # `name` is every source's label (the prefix of its document ids), handled by flightdeck itself
        label = settings.pop("name")
        if not isinstance(label, str) or not label or "/" in label:
            ck.add((*loc, "name"), f"a source name is a non-empty word without '/', got {label!r}")
    reg = registry()
    names = reg.names(category)
    if name not in names:
        option = section.option(str(name)) if section else None
        if option is not None and section is not None:
            msg = _status_problem(section, option.id, option_status(option.key))
            if msg:
                ck.add(loc, msg)
                return
        planned = [o.id for o in section.options if option_status(o.key).state == "planned"] if section else []
        hint = f" Planned, not yet available: {', '.join(planned)}." if planned else ""
        ck.add(loc, f"unknown {category.value} '{name}'. Available: {', '.join(names)}."
                    + _did_you_mean(str(name), names) + hint)
        return
    option = section.option(str(name)) if section else None
    if option is not None and section is not None:
        # a registered provider whose checklist option is still planned (lakefs: no server to test against)
        status = option_status(option.key)
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
            msg = err["msg"]
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
            msg = _status_problem(section, item, option_status(option.key))
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
            loc = tuple(err["loc"])
            # pydantic names union branches in the loc ("function-before[...]"): drop those parts.
            loc = tuple(p for p in loc if not (isinstance(p, str) and ("[" in p or p.startswith("function"))))
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
                ck.add(loc, err["msg"])
        return None


def _model_at(model: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    current: Any = model
    for part in loc:
        fld = getattr(current, "model_fields", {}).get(part)
        if fld is None:
            return None
        current = fld.annotation
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def check_spec(path: Path, text: str | None = None) -> tuple[LoadedSpec | None, list[SpecProblem]]:
    """Load and check the spec at ``path``; returns the spec (when valid) and every problem found."""
    path = Path(path)
    text = path.read_text(encoding="utf-8") if text is None else text
    positions: dict[Loc, tuple[int, int]] = {}
    try:
        data = YAML(typ="rt").load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (None, None)
        return None, [SpecProblem(str(path), "", f"invalid YAML: {exc.problem or exc}", line, col)]
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
