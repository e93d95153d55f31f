"""The status of each checklist option in this build, computed from the registry (never kept by hand).

- ``ready``: a registered provider implements it and its dependencies are installed;
- ``needs extra``: implemented, but ``pip install 'flightdeck[x]'`` is missing;
- ``planned``: nothing implements it yet.

That every ``ready`` option is exercised by a test is enforced by ``tests/test_checklist_honesty.py``,
which collects the ``@pytest.mark.exercises("phase.section.option")`` marks of the whole suite.
"""

from __future__ import annotations

from dataclasses import dataclass

from flightdeck.registry import Flavor, registry

__all__ = ["OptionStatus", "option_status"]


@dataclass(frozen=True)
class OptionStatus:
    state: str  # "ready" | "needs extra" | "planned"
    detail: str
    providers: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {"status": self.state, "detail": self.detail, "providers": list(self.providers)}


def option_status(option_key: str) -> OptionStatus:
    """Status of ``phase.section.option`` from the registered flavors that implement it."""
    reg = registry()
    flavors: list[Flavor] = reg.for_option(option_key)
    if not flavors:
        from flightdeck.registry.flavors import PLANNED_REASONS

        return OptionStatus("planned", PLANNED_REASONS.get(option_key, "not implemented in this build yet"))
    names = tuple(f"{f.category.value}:{f.name}" for f in flavors)
    usable = [f for f in flavors if not reg.missing_modules(f)]
    if usable:
        summary = "; ".join(f"{f.name}: {f.summary}" + (f" ({f.note})" if f.note else "") if f.summary
                            else f.name for f in usable)
        return OptionStatus("ready", summary, names)
    hints = sorted({reg.install_hint(f) for f in flavors})
    return OptionStatus("needs extra", " or ".join(hints), names)
