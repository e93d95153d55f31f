"""The status of each checklist option in this build: computed from evidence, never kept by hand.

An option is ``ready`` here when both hold:

1. **a test proved it**: a test marked ``@pytest.mark.exercises("phase.section.option")`` *passed* (not
   skipped) in the full test run that validated this build. The suite writes what passed, and what each
   passing test needed, to ``flightdeck/spec/verified.json``, which ships with the package; ``make test``
   fails when the file and the run disagree (``tests/checklist_verification.py``);
2. **it would pass here**: every library that such a passing test needed is installed in this environment,
   and a registered provider of the option has all it needs (its modules, programs such as ``tesseract``,
   and for providers that need another one, e.g. synthetic data needs an LLM generator, one of those).

Otherwise the option ``needs extra`` (implemented and proved, but this install lacks what it needs: the
detail says what to install), is ``planned`` (nothing implements it, or no marked test passed: the detail
says why), or is ``unverified`` (only a third-party plugin implements it; flightdeck's tests never ran it).
A user's fresh install thus shows the truth without running any test.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from flightdeck.registry import BUILTIN_FLAVORS, Flavor, registry
from flightdeck.registry.lookup import installed

__all__ = ["OptionStatus", "Evidence", "option_status", "option_usable", "verified_evidence", "VERIFIED_FILE", "STATES"]

VERIFIED_FILE = "verified.json"  # in the flightdeck.spec package
STATES = ("ready", "needs extra", "unverified", "planned")


@dataclass(frozen=True)
class OptionStatus:
    state: str  # one of STATES
    detail: str
    providers: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {"status": self.state, "detail": self.detail, "providers": list(self.providers)}


@dataclass(frozen=True)
class Evidence:
    """Tests marked for one option that passed together needing the same modules."""

    requires: tuple[str, ...]
    tests: tuple[str, ...]


def _parse_evidence(data: dict[str, Any]) -> dict[str, tuple[Evidence, ...]]:
    return {option: tuple(Evidence(tuple(e["requires"]), tuple(e["tests"])) for e in entries)
            for option, entries in data.get("options", {}).items()}


@lru_cache(maxsize=1)
def verified_evidence() -> dict[str, tuple[Evidence, ...]]:
    """What the test run that validated this build proved, per option (``flightdeck/spec/verified.json``)."""
    try:
        text = resources.files("flightdeck.spec").joinpath(VERIFIED_FILE).read_text(encoding="utf-8")
    except FileNotFoundError:  # a build without the file proves nothing: implemented options read as planned
        return {}
    return _parse_evidence(json.loads(text))


def _extras_of(modules: list[str], flavors: list[Flavor]) -> list[str]:
    """The pip extras that bring ``modules``, preferring those of the option's own providers."""
    by_module: dict[str, str] = {}
    for flavor in [*flavors, *BUILTIN_FLAVORS]:
        for module in flavor.requires:
            by_module.setdefault(module, flavor.extra or flavor.name)
    return sorted({by_module.get(m, m) for m in modules})


def option_usable(option_key: str) -> OptionStatus:
    """Whether ``phase.section.option`` can run in this environment, proof aside: ``ready`` when a registered
    provider has everything it needs, else ``needs extra`` (what to install) or ``planned`` (nothing implements it).

    ``flightdeck validate`` and ``init`` decide with this; ``flightdeck checklist`` reports :func:`option_status`.
    """
    reg = registry()
    flavors: list[Flavor] = reg.for_option(option_key)
    if not flavors:
        from flightdeck.registry.flavors import PLANNED_REASONS

        return OptionStatus("planned", PLANNED_REASONS.get(option_key, "not implemented in this build yet"))
    names = tuple(f"{f.category.value}:{f.name}" for f in flavors)
    usable = [f for f in flavors if not reg.unmet(f)]
    if usable:
        return OptionStatus("ready", "; ".join(f"{f.name}: {f.summary}" + (f" ({f.note})" if f.note else "")
                                              if f.summary else f.name for f in usable), names)
    # each provider is a way to get the option: say them as alternatives
    ways = list(dict.fromkeys("; ".join(reg.unmet(f)) for f in flavors))
    return OptionStatus("needs extra", " or ".join(ways), names)


def option_status(option_key: str, *, evidence: dict[str, tuple[Evidence, ...]] | None = None) -> OptionStatus:
    """Status of ``phase.section.option`` in this environment, with the proof (see the module docstring)."""
    usable = option_usable(option_key)
    if usable.state == "planned":
        return usable
    reg = registry()
    flavors = reg.for_option(option_key)
    proofs = (verified_evidence() if evidence is None else evidence).get(option_key, ())
    if not proofs:
        builtin = {(f.category, f.name) for f in BUILTIN_FLAVORS}
        plugins = [f for f in flavors if (f.category, f.name) not in builtin and not reg.unmet(f)]
        if plugins:
            return OptionStatus("unverified", "; ".join(f"{f.name} (plugin): {f.summary or f.impl}" for f in plugins)
                                + " — not exercised by flightdeck's own tests", usable.providers)
        return OptionStatus("planned", f"implemented by {', '.join(f.name for f in flavors)}, but no test marked for "
                            "it passed in the test run that validated this build", usable.providers)
    runnable = [e for e in proofs if all(installed(m) for m in e.requires)]
    if usable.state == "ready" and runnable:
        return usable
    # What to install: what the providers lack, and the extras a proof needs that are not said already.
    hints: list[str] = [] if usable.state == "ready" else [usable.detail]
    if not runnable:
        ways = [_extras_of([m for m in e.requires if not installed(m)], flavors) for e in proofs]
        if not any(all(f"flightdeck[{x}]" in usable.detail for x in way) for way in ways):
            hints.append(f"pip install 'flightdeck[{','.join(min(ways, key=len))}]'"
                         + (" (what its tests ran with)" if usable.state == "ready" else ""))
    return OptionStatus("needs extra", "; ".join(hints), usable.providers)
