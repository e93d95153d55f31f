"""The suite proves the checklist: which options' marked tests passed, and what each of those tests needed.

A test that makes a checklist option real says so with ``@pytest.mark.exercises("phase.section.option")``
(optionally ``provider="s3"`` when the option has several providers). This plugin records, for every such
test that *passed* (a skip proves nothing), the libraries the product needed to pass it:

- the modules of every provider flightdeck loaded from the registry, and of every optional library it imported
  through ``optional_import`` (``flightdeck.registry.lookup.requirement_observer`` tells), while the test ran
  or while any fixture it used ran (a session fixture runs once: what it loaded counts for every test using it);
  what a thread loads counts for whoever started the thread (the test, the fixture, or the test file being
  collected), never for whatever the main thread happens to run at that moment: a thread pool an earlier test left
  winding down must not add its loads to the next test's fixtures, or the proof would depend on timing;
- the modules the named provider (or the option's providers) requires in the registry.

What only the test needed does not count: the llama.cpp server that stands in for the OpenAI API, moto for
S3, fpdf2 writing PDFs are the test's, not the product's (each provider's ``note`` says what stood in).

At the end of a full run (the whole ``tests/`` folder, no ``-k``/``-m``/``--lf``/``--deselect``), the proof is
compared with ``src/flightdeck/spec/verified.json``, the file that ships with the package and from which
``flightdeck checklist`` computes ``ready`` on a user's machine. If they differ, the run fails and says how;
``pytest --update-verified`` (``make verified``) rewrites the file from the run.
"""

from __future__ import annotations

import json
import sys
import threading
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from flightdeck.registry import lookup

TESTS = Path(__file__).resolve().parent
_OWNER = "_flightdeck_checklist_owner"  # the attribute naming whom a thread works for
Owner = tuple[str, Any]  # ("fixture", (id of its definition, param index)) | ("test", nodeid) | ("file", path)
VERIFIED = TESTS.parent / "src" / "flightdeck" / "spec" / "verified.json"
_ABOUT = ("Written by the test suite (tests/checklist_verification.py; `make verified`): for each checklist option, "
          "the tests marked @pytest.mark.exercises(option) that passed in the full run validating this build, grouped "
          "by the product modules they needed. `flightdeck checklist` reads it: an option is ready where one group's "
          "modules are installed. Do not edit by hand.")


class ChecklistVerification:
    """A pytest plugin (registered by tests/conftest.py)."""

    def __init__(self, config: pytest.Config, *, tests: Path = TESTS, verified: Path = VERIFIED) -> None:
        self.config = config
        self.tests, self.verified = tests, verified
        self.update = bool(config.getoption("--update-verified", default=False))
        # (id of the fixture's definition, param index) -> modules: names repeat across test modules
        self.by_fixture: dict[tuple[int, int], set[str]] = defaultdict(set)
        self.by_file: dict[Path, set[str]] = defaultdict(set)
        self.by_test: dict[str, set[str]] = defaultdict(set)
        self.fixtures: list[tuple[int, int]] = []
        self.current: str | None = None
        self.outcome: dict[str, bool] = {}  # nodeid -> passed (every phase), for marked tests
        self.marks: dict[str, list[tuple[str, str | None]]] = {}
        self.items: dict[str, pytest.Item] = {}
        self.message: list[str] = []
        self._thread_start: Any = None
        lookup.requirement_observer = self._observed
        self._watch_threads()

    def unregister(self) -> None:
        lookup.requirement_observer = None
        if self._thread_start is not None:
            threading.Thread.start = self._thread_start  # type: ignore[method-assign]
            self._thread_start = None

    # --- recording --------------------------------------------------------------------------------------------

    def _owner(self) -> Owner | None:
        """Whom the main thread works for now: the fixture being set up, else the running test, else (at
        collection, importing a test module) that module's file."""
        if self.fixtures:
            return ("fixture", self.fixtures[-1])
        if self.current is not None:
            return ("test", self.current)
        frame = sys._getframe(1)
        while frame is not None and not Path(frame.f_code.co_filename).name.startswith("test_"):
            frame = frame.f_back
        return ("file", Path(frame.f_code.co_filename).resolve()) if frame is not None else None

    def _watch_threads(self) -> None:
        """Stamp every thread started from now on with its owner: the starter's owner (a thread's thread inherits)."""
        original = self._thread_start = threading.Thread.start
        plugin = self

        def start(thread: threading.Thread) -> None:
            starter = threading.current_thread()
            owner = plugin._owner() if starter is threading.main_thread() else getattr(starter, _OWNER, None)
            setattr(thread, _OWNER, owner)
            original(thread)

        threading.Thread.start = start  # type: ignore[method-assign]

    def _observed(self, modules: Any) -> None:
        """flightdeck loaded a provider or imported an optional library: attribute it to whom it was done for."""
        thread = threading.current_thread()
        # a thread not started through threading (a C library's) has no owner: what it loads is not attributed
        owner = self._owner() if thread is threading.main_thread() else getattr(thread, _OWNER, None)
        if owner is None:
            return
        kind, key = owner
        {"fixture": self.by_fixture, "test": self.by_test, "file": self.by_file}[kind][key].update(modules)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_fixture_setup(self, fixturedef: Any, request: Any):  # noqa: ANN201
        self.fixtures.append((id(fixturedef), getattr(request, "param_index", 0)))
        try:
            yield
        finally:
            self.fixtures.pop()

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: Any):  # noqa: ANN201
        self.current = item.nodeid
        marks = [(m.args[0], m.kwargs.get("provider")) for m in item.iter_markers("exercises") if m.args]
        if marks:
            self.marks[item.nodeid] = marks
            self.items[item.nodeid] = item
            self.outcome[item.nodeid] = True
        try:
            yield
        finally:
            self.current = None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.nodeid in self.outcome and (report.failed or report.skipped):
            self.outcome[report.nodeid] = False

    # --- the proof --------------------------------------------------------------------------------------------

    def _requires(self, item: pytest.Item, option: str, provider: str | None) -> list[str]:
        from flightdeck.registry import BUILTIN_FLAVORS

        needed = set(self.by_test.get(item.nodeid, ()))
        needed |= self.by_file.get(Path(str(item.path)).resolve(), set())
        callspec = getattr(item, "callspec", None)
        params, indices = (callspec.params, callspec.indices) if callspec is not None else ({}, {})
        definitions = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
        for name in getattr(item, "fixturenames", ()):
            for fixturedef in definitions.get(name, ()):  # the one used and those it overrides (and may call)
                needed |= self.by_fixture.get((id(fixturedef), indices.get(name, 0)), set())
        flavors = [f for f in BUILTIN_FLAVORS if option in f.options]
        if provider is None and len({f.requires for f in flavors}) > 1:
            # several providers with different needs: a parameter naming one of them (store="s3") says which
            named = [f for f in flavors if f.name in {v for v in params.values() if isinstance(v, str)}]
            flavors = named or flavors
        for flavor in (f for f in flavors if provider is None or f.name == provider):
            needed |= set(flavor.requires)
        return sorted(needed)

    def proof(self) -> dict[str, Any]:
        groups: dict[str, dict[tuple[str, ...], list[str]]] = defaultdict(lambda: defaultdict(list))
        for nodeid, passed in self.outcome.items():
            if not passed:
                continue
            for option, provider in self.marks[nodeid]:
                requires = tuple(self._requires(self.items[nodeid], option, provider))
                groups[option][requires].append(nodeid)
        return {"about": _ABOUT, "options": {
            option: [{"requires": list(req), "tests": sorted(tests)} for req, tests in sorted(by_req.items())]
            for option, by_req in sorted(groups.items())}}

    def _full_run(self, session: pytest.Session) -> bool:
        opt = self.config.option
        if opt.keyword or opt.markexpr or getattr(opt, "lf", False) or getattr(opt, "deselect", None) \
                or getattr(opt, "collectonly", False):
            return False
        base = self.config.invocation_params.dir
        roots = {(base / a.split("::")[0]).resolve() for a in self.config.args}
        return roots <= {self.tests, self.tests.parent} and session.testscollected > 0

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        self.unregister()
        if not self._full_run(session):
            if self.update:
                self.message = ["--update-verified needs a full run of tests/ (no -k, -m, --lf or paths): not written"]
                session.exitstatus = pytest.ExitCode.USAGE_ERROR
            return
        if exitstatus != 0:
            return  # failures speak for themselves; the proof of a red run is not compared or written
        fresh = self.proof()
        shipped = json.loads(self.verified.read_text(encoding="utf-8")) if self.verified.is_file() else {}
        # Only the install that validates the build (make test: every extra) can prove every option; on a
        # smaller one (embedded) the tests of the missing extras skip, which proves nothing wrong.
        lacking = sorted({m for groups in [*shipped.get("options", {}).values(), *fresh["options"].values()]
                          for g in groups for m in g["requires"] if not lookup.installed(m)})
        if lacking:
            self.message = [f"checklist proof not compared: this install lacks {', '.join(lacking)} "
                            "(the validating install is the dev one of `make test`)"]
            if self.update:
                self.message.append("--update-verified needs that install: not written")
                session.exitstatus = pytest.ExitCode.USAGE_ERROR
            return
        if self.update:
            self.verified.write_text(json.dumps(fresh, indent=1, sort_keys=True) + "\n", encoding="utf-8")
            self.message = [f"wrote {self.verified}: {len(fresh['options'])} options proved"]
            return
        if shipped.get("options") == fresh["options"]:
            self.message = [f"checklist proof matches {self.verified.name}: {len(fresh['options'])} options proved"]
            return
        self.message = _differences(shipped.get("options", {}), fresh["options"])
        session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.message:
            return
        failed = not self.message[0].startswith(("checklist proof matches", "wrote ", "checklist proof not compared"))
        terminalreporter.section("checklist verification", red=failed, green=not failed)
        for line in self.message:
            terminalreporter.line(line)


def _flatten(options: dict[str, Any]) -> set[tuple[str, str, tuple[str, ...]]]:
    return {(option, test, tuple(group["requires"])) for option, groups in options.items()
            for group in groups for test in group["tests"]}


def _differences(shipped: dict[str, Any], fresh: dict[str, Any]) -> list[str]:
    lines = ["src/flightdeck/spec/verified.json does not match what this run proved; `flightdeck checklist` would "
             "not tell the truth. If the run is right, write it with `make verified` (pytest --update-verified) "
             "and commit the file."]
    for option in sorted(set(shipped) - set(fresh)):
        lines.append(f"  {option}: shipped as proved, but none of its marked tests passed in this run")
    for option in sorted(set(fresh) - set(shipped)):
        lines.append(f"  {option}: proved by this run, missing from the shipped file")
    old, new = _flatten(shipped), _flatten(fresh)
    for option, test, requires in sorted(old - new)[:20]:
        if option in fresh:
            lines.append(f"  - {option} {test} (needs {', '.join(requires) or 'nothing extra'})")
    for option, test, requires in sorted(new - old)[:20]:
        if option in shipped:
            lines.append(f"  + {option} {test} (needs {', '.join(requires) or 'nothing extra'})")
    return lines
