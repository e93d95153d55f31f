"""``flightdeck checklist``: the seed checklist with the spec's choices ticked and each option's status."""

from __future__ import annotations

from typing import Any

from flightdeck.registry import registry
from flightdeck.spec.catalog import Section, catalog
from flightdeck.spec.models import section_categories
from flightdeck.spec.status import STATES, option_status, verified_evidence

__all__ = ["checklist_report", "selected_options", "render_text", "render_markdown"]


def _section_value(spec: Any, section: Section) -> Any:
    return getattr(getattr(spec, section.phase), section.key)


def selected_options(spec: Any, section: Section) -> set[str]:
    """Option ids of ``section`` that ``spec`` chooses (providers mapped to the options they implement)."""
    if spec is None:
        return set()
    value = _section_value(spec, section)
    values = value if isinstance(value, list) else ([] if value is None else [value])
    chosen: set[str] = set()
    categories = section_categories(section.path)
    for v in values:
        name = getattr(v, "provider", v)
        if section.option(name) is not None:
            chosen.add(name)
        else:
            for flavor in (f for c in categories for f in registry().flavors(c)):
                if flavor.name == name:
                    chosen.update(k.rsplit(".", 1)[1] for k in flavor.options
                                  if k.startswith(section.path + "."))
    return chosen


def checklist_report(spec: Any | None = None) -> dict[str, Any]:
    """The whole catalog as data: phases → sections → options with ``selected`` and ``status``."""
    cat = catalog()
    phases = []
    counts = dict.fromkeys(STATES, 0)
    for phase in cat.phases:
        sections = []
        for section in phase.sections:
            chosen = selected_options(spec, section)
            options = []
            for option in section.options:
                status = option_status(option.key)
                counts[status.state] += 1
                options.append({"id": option.id, "key": option.key, "label": option.label,
                                "links": [{"name": lk.name, "url": lk.url} for lk in option.links],
                                "selected": option.id in chosen, **status.to_dict()})
            sections.append({"key": section.key, "number": section.number, "title": section.title,
                             "select": section.select, "options": options,
                             **({"note": section.note} if section.note else {})})
        phases.append({"key": phase.key, "number": phase.number, "title": phase.title, "sections": sections})
    proofs = verified_evidence()
    how = (f"ready = a test marked for the option passed in the test run that validated this build ({len(proofs)} "
           "options proved, flightdeck/spec/verified.json) and everything that test and a provider need is installed "
           "here; needs extra = proved, but this install lacks something (the detail says what)")
    return {"title": cat.title, "subtitle": cat.subtitle, "counts": counts, "how": how,
            "sections": sum(len(p["sections"]) for p in phases),
            "options": sum(len(s["options"]) for p in phases for s in p["sections"]), "phases": phases}


def _option_line(o: dict[str, Any]) -> str:
    tick = "x" if o["selected"] else " "
    label = o["label"]
    if o["links"]:
        label += " (" + ", ".join("[{name}]({url})".format(**lk) for lk in o["links"]) + ")"
    return f"- [{tick}] {label}  `{o['id']}` · {o['status']} — {o['detail']}"


def render_markdown(report: dict[str, Any]) -> str:
    lines = [f"# {report['title']}", f"_{report['subtitle']}_", "",
             f"{report['counts']['ready']} ready · {report['counts']['needs extra']} need an extra · "
             + (f"{report['counts']['unverified']} unverified (plugins) · " if report['counts']['unverified'] else "")
             + f"{report['counts']['planned']} planned, of {report['options']} options", "", f"_{report['how']}_", ""]
    for phase in report["phases"]:
        lines += ["---", "", f"# PHASE {phase['number']}: {phase['title']}", ""]
        for s in phase["sections"]:
            mode = "Multi-select" if s["select"] == "multi" else "Single-select"
            lines.append(f"## {s['number']} {s['title']} ({mode})")
            lines += [_option_line(o) for o in s["options"]]
            lines.append("")
    return "\n".join(lines)


def render_text(report: dict[str, Any]) -> str:
    """Like the seed, with ticks for the spec's choices and each option's status."""
    lines = [report["title"], report["subtitle"], ""]
    for phase in report["phases"]:
        lines.append(f"PHASE {phase['number']}: {phase['title']}")
        for s in phase["sections"]:
            mode = "Multi-select" if s["select"] == "multi" else "Single-select"
            lines.append(f"  {s['number']} {s['title']} ({mode})")
            for o in s["options"]:
                tick = "x" if o["selected"] else " "
                status = o["status"] + (f": {o['detail']}" if o["status"] == "needs extra" else "")
                lines.append(f"    [{tick}] {o['label']:<58} {o['id']:<28} {status}")
        lines.append("")
    c = report["counts"]
    lines.append(f"{c['ready']} ready, {c['needs extra']} need an extra, "
                 + (f"{c['unverified']} unverified (plugins), " if c["unverified"] else "")
                 + f"{c['planned']} planned — {report['options']} options in {report['sections']} sections.")
    lines.append(report["how"] + ".")
    return "\n".join(lines)
