"""The seed checklist as data (``checklist.yaml``): phases, sections and options.

It is the single source for the spec's choices, ``flightdeck init``, ``flightdeck checklist`` and the
JSON Schema. Option keys are ``phase.section.option`` (``retrieval.vector_database.faiss``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from ruamel.yaml import YAML

__all__ = ["Link", "Option", "Section", "Phase", "Catalog", "catalog"]


@dataclass(frozen=True)
class Link:
    name: str
    url: str


@dataclass(frozen=True)
class Option:
    """One checkbox of the seed."""

    id: str
    label: str
    links: tuple[Link, ...]
    key: str  # phase.section.option


@dataclass(frozen=True)
class Section:
    """One numbered section of the seed (``2.2 Choose Vector Database``)."""

    key: str
    number: str
    title: str
    select: str  # "single" | "multi"
    options: tuple[Option, ...]
    phase: str
    note: str = ""

    @property
    def path(self) -> str:
        """``phase.section``, the dotted location of this section in a spec."""
        return f"{self.phase}.{self.key}"

    @property
    def multi(self) -> bool:
        return self.select == "multi"

    @property
    def option_ids(self) -> list[str]:
        return [o.id for o in self.options]

    def option(self, option_id: str) -> Option | None:
        return next((o for o in self.options if o.id == option_id), None)

    @property
    def heading(self) -> str:
        mode = "Multi-select" if self.multi else "Single-select"
        return f"{self.number} {self.title} ({mode})"


@dataclass(frozen=True)
class Phase:
    key: str
    number: int
    title: str
    sections: tuple[Section, ...]

    @property
    def heading(self) -> str:
        return f"PHASE {self.number}: {self.title}"


@dataclass(frozen=True)
class Catalog:
    title: str
    subtitle: str
    phases: tuple[Phase, ...]

    @property
    def sections(self) -> list[Section]:
        return [s for p in self.phases for s in p.sections]

    @property
    def options(self) -> list[Option]:
        return [o for s in self.sections for o in s.options]

    def phase(self, key: str) -> Phase | None:
        return next((p for p in self.phases if p.key == key), None)

    def section(self, path: str) -> Section | None:
        """The section at ``phase.section``, or None."""
        return next((s for s in self.sections if s.path == path), None)

    def option(self, key: str) -> Option | None:
        """The option at ``phase.section.option``, or None."""
        return next((o for o in self.options if o.key == key), None)


def _parse(raw: dict) -> Catalog:
    phases = []
    for p in raw["phases"]:
        sections = []
        for s in p["sections"]:
            options = tuple(
                Option(
                    id=o["id"],
                    label=o["label"],
                    links=tuple(Link(link["name"], link["url"]) for link in o.get("links", []) or []),
                    key=f"{p['key']}.{s['key']}.{o['id']}",
                )
                for o in s["options"]
            )
            sections.append(Section(key=s["key"], number=str(s["number"]), title=s["title"],
                                    select=s["select"], options=options, phase=p["key"],
                                    note=s.get("note", "")))
        phases.append(Phase(key=p["key"], number=int(p["number"]), title=p["title"],
                            sections=tuple(sections)))
    return Catalog(title=raw.get("title", ""), subtitle=raw.get("subtitle", ""), phases=tuple(phases))


@lru_cache(maxsize=1)
def catalog() -> Catalog:
    """The catalog shipped with this build."""
    text = resources.files("flightdeck.spec").joinpath("checklist.yaml").read_text(encoding="utf-8")
    return _parse(YAML(typ="safe").load(text))
