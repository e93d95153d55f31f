"""The provider registry: names per category, helpful errors, lazy imports, status and plugins."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from pydantic import BaseModel

import flightdeck.registry.lookup as lookup_mod
import flightdeck.spec.loader as loader_mod
import flightdeck.spec.status as status_mod
from flightdeck.errors import MissingDependencyError, UnknownProviderError
from flightdeck.registry import BUILTIN_FLAVORS, ENTRY_POINT_GROUP, Category, Flavor, Registry, registry
from flightdeck.spec.loader import check_spec
from flightdeck.spec.status import option_status

pytestmark = pytest.mark.unit

HEAVY = ("torch", "sentence_transformers", "faiss", "bs4")

MISSING_QDRANT = Flavor(
    Category.VECTOR_STORE, "qdrant", "surely_not_installed_mod:Thing",
    extra="qdrant", requires=("surely_not_installed_mod",),
    options=("retrieval.vector_database.qdrant",),
)


def _registry_with(*extra: Flavor) -> Registry:
    return Registry([*BUILTIN_FLAVORS, *extra], plugins=False)


def _registry_without(option_key: str, *extra: Flavor) -> Registry:
    """The built-ins minus every flavor that implements ``option_key`` (so that it is planned), plus ``extra``."""
    return Registry([*(f for f in BUILTIN_FLAVORS if option_key not in f.options), *extra], plugins=False)


def _store(name: str, impl: str = "x:Y", **kw: object) -> Flavor:
    return Flavor(Category.VECTOR_STORE, name, impl, **kw)


# --- names and lookups -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("category", "name"),
    [
        (Category.VECTOR_STORE, "faiss"),
        (Category.EMBEDDER, "sentence_transformers"),
        (Category.SOURCE, "files"),
        (Category.CHUNKER, "recursive"),
        (Category.GENERATOR, "extractive"),
        (Category.RETRIEVAL_FEATURE, "hybrid_search"),
        (Category.USE_CASE, "rag"),
        (Category.PREPROCESSOR, "cleaning_normalization"),
    ],
)
def test_builtin_names_per_category(category: Category, name: str) -> None:
    names = registry().names(category)
    assert name in names
    assert names == sorted(names)
    assert registry().get(category, name).name == name


def test_names_are_kept_apart_by_category() -> None:
    reg = Registry([
        _store("faiss", "s:Faiss"),
        Flavor(Category.EMBEDDER, "sentence_transformers", "e:St"),
        Flavor(Category.PREPROCESSOR, "tokenization", "p:Tok"),
        Flavor(Category.PREPROCESSOR, "cleaning_normalization", "p:Clean"),
        _store("shared", "s:Shared"),
        Flavor(Category.EMBEDDER, "shared", "e:Shared"),  # the same name in another category is another flavor
    ], plugins=False)
    assert reg.names(Category.VECTOR_STORE) == ["faiss", "shared"]
    assert reg.names(Category.EMBEDDER) == ["sentence_transformers", "shared"]
    assert reg.names(Category.PREPROCESSOR) == ["cleaning_normalization", "tokenization"]
    assert reg.names(Category.CHUNKER) == []
    assert reg.get(Category.VECTOR_STORE, "shared").impl == "s:Shared"
    assert reg.get(Category.EMBEDDER, "shared").impl == "e:Shared"
    with pytest.raises(UnknownProviderError):
        reg.get(Category.EMBEDDER, "faiss")
    # the built-in table keeps its categories apart too
    assert "faiss" not in registry().names(Category.EMBEDDER)
    assert "sentence_transformers" not in registry().names(Category.VECTOR_STORE)


def test_unknown_name_lists_the_valid_ones_and_suggests() -> None:
    # names of other categories are not offered: only faiss is a vector store here
    reg = Registry([_store("faiss"), Flavor(Category.EMBEDDER, "fiass_embedder", "x:Y")], plugins=False)
    with pytest.raises(UnknownProviderError) as info:
        reg.get(Category.VECTOR_STORE, "fiass")
    message = str(info.value)
    assert message == "Unknown vector_store 'fiass'. Available: faiss. Did you mean 'faiss'?"
    assert isinstance(info.value, LookupError)
    assert info.value.__cause__ is None  # raised `from None`: the KeyError is noise
    # the built-in registry lists whatever vector stores it has, sorted, and still suggests faiss
    names = registry().names(Category.VECTOR_STORE)
    with pytest.raises(UnknownProviderError) as info:
        registry().get(Category.VECTOR_STORE, "fiass")
    assert str(info.value) == f"Unknown vector_store 'fiass'. Available: {', '.join(names)}. Did you mean 'faiss'?"


def test_unknown_name_without_a_close_match_has_no_suggestion() -> None:
    reg = Registry([_store("faiss"), _store("chroma")], plugins=False)  # listed sorted, not as registered
    with pytest.raises(UnknownProviderError) as info:
        reg.get(Category.VECTOR_STORE, "zzzz")
    assert str(info.value) == "Unknown vector_store 'zzzz'. Available: chroma, faiss."


def test_later_registration_replaces_earlier() -> None:
    reg = Registry([_store("faiss", "first:Store"), _store("chroma"), _store("faiss", "elsewhere:Store")],
                   plugins=False)
    assert reg.names(Category.VECTOR_STORE) == ["chroma", "faiss"]
    assert reg.get(Category.VECTOR_STORE, "faiss").impl == "elsewhere:Store"
    reg.add(_store("chroma", "added:Store"))
    assert reg.names(Category.VECTOR_STORE) == ["chroma", "faiss"]
    assert reg.get(Category.VECTOR_STORE, "chroma").impl == "added:Store"
    # a built-in is replaced the same way
    reg = _registry_with(_store("faiss", "elsewhere:Store"))
    assert reg.names(Category.VECTOR_STORE) == registry().names(Category.VECTOR_STORE)
    assert reg.get(Category.VECTOR_STORE, "faiss").impl == "elsewhere:Store"


def test_for_option_finds_the_implementing_flavor() -> None:
    reg = Registry([
        _store("faiss", options=("retrieval.vector_database.faiss",)),
        _store("chroma", options=("retrieval.vector_database.chroma",)),
        Flavor(Category.EMBEDDER, "st", "x:Y"),
        _store("faiss_gpu", options=("retrieval.vector_database.faiss", "retrieval.system.metadata_filtering")),
    ], plugins=False)
    flavors = reg.for_option("retrieval.vector_database.faiss")
    assert [(f.category, f.name) for f in flavors] == [(Category.VECTOR_STORE, "faiss"),
                                                        (Category.VECTOR_STORE, "faiss_gpu")]
    assert [f.name for f in reg.for_option("retrieval.system.metadata_filtering")] == ["faiss_gpu"]
    assert reg.for_option("retrieval.vector_database.pinecone") == []
    # the built-in faiss store implements its option
    assert (Category.VECTOR_STORE, "faiss") in [
        (f.category, f.name) for f in registry().for_option("retrieval.vector_database.faiss")]


# --- missing dependencies ------------------------------------------------------------------------------------


def test_missing_dependency_names_the_extra_and_is_chained() -> None:
    reg = _registry_with(MISSING_QDRANT)
    with pytest.raises(MissingDependencyError) as info:
        reg.load(Category.VECTOR_STORE, "qdrant")
    message = str(info.value)
    assert message.startswith("vector_store 'qdrant' needs: ")
    assert "pip install 'flightdeck[qdrant]'" in message
    assert "surely_not_installed_mod" in message
    assert isinstance(info.value.__cause__, ImportError)
    assert isinstance(info.value, ImportError)  # callers catching ImportError still catch it


def test_install_hint_defaults_to_the_flavor_name() -> None:
    reg = _registry_with()
    flavor = Flavor(Category.VECTOR_STORE, "chroma", "x:Y")
    assert reg.install_hint(flavor) == "pip install 'flightdeck[chroma]'"
    assert reg.install_hint(MISSING_QDRANT) == "pip install 'flightdeck[qdrant]'"


def test_missing_modules_lists_only_what_is_absent() -> None:
    reg = _registry_with(MISSING_QDRANT)
    assert reg.missing_modules(MISSING_QDRANT) == ["surely_not_installed_mod"]
    both = Flavor(Category.VECTOR_STORE, "mixed", "x:Y", requires=("json", "surely_not_installed_mod"))
    assert reg.missing_modules(both) == ["surely_not_installed_mod"]
    assert reg.missing_modules(Flavor(Category.VECTOR_STORE, "none", "x:Y")) == []


def test_missing_modules_does_not_import(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "explodes_on_import.py").write_text("raise RuntimeError('imported!')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    flavor = Flavor(Category.VECTOR_STORE, "boom", "explodes_on_import:X", requires=("explodes_on_import",))
    assert _registry_with().missing_modules(flavor) == []
    assert "explodes_on_import" not in sys.modules


def test_option_status_needs_extra_for_an_uninstalled_flavor(monkeypatch: pytest.MonkeyPatch) -> None:
    key = "retrieval.vector_database.qdrant"
    unimplemented = _registry_without(key)
    monkeypatch.setattr(status_mod, "registry", lambda: unimplemented)
    assert option_status(key).state == "planned"  # nothing implements it
    reg = _registry_without(key, MISSING_QDRANT)
    monkeypatch.setattr(status_mod, "registry", lambda: reg)
    status = option_status(key)
    assert status.state == "needs extra"
    assert status.detail == "pip install 'flightdeck[qdrant]'"
    assert status.providers == ("vector_store:qdrant",)
    assert option_status("retrieval.vector_database.faiss").state == "ready"


def test_option_status_ready_when_one_of_several_flavors_is_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    ok = Flavor(Category.VECTOR_STORE, "qdrant_lite", "json:loads", requires=("json",),
                options=("retrieval.vector_database.qdrant",), summary="in-process")
    reg = _registry_without("retrieval.vector_database.qdrant", MISSING_QDRANT, ok)
    monkeypatch.setattr(status_mod, "registry", lambda: reg)
    # a proof this install can run: the shipped one needs qdrant-client, which only some installs have
    proof = {"retrieval.vector_database.qdrant": (status_mod.Evidence(("json",), ("tests/x.py::t",)),)}
    status = option_status("retrieval.vector_database.qdrant", evidence=proof)
    assert status.state == "ready"
    assert status.detail == "qdrant_lite: in-process"
    assert set(status.providers) == {"vector_store:qdrant", "vector_store:qdrant_lite"}


def test_spec_naming_an_uninstalled_provider_says_how_to_install(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    reg = _registry_with(MISSING_QDRANT)
    monkeypatch.setattr(status_mod, "registry", lambda: reg)
    monkeypatch.setattr(loader_mod, "registry", lambda: reg)
    monkeypatch.setattr(lookup_mod, "registry", lambda: reg)
    (tmp_path / "docs").mkdir()
    spec = tmp_path / "flightdeck.yaml"
    spec.write_text("project: demo\n"
                    "data:\n"
                    "  sources:\n"
                    "    - {provider: files, path: ./docs}\n"
                    "retrieval:\n"
                    "  vector_database: qdrant\n")
    loaded, problems = check_spec(spec)
    assert loaded is None
    assert len(problems) == 1, [str(p) for p in problems]
    text = str(problems[0])
    assert f"{spec}:6:" in text
    assert "pip install 'flightdeck[qdrant]'" in text
    assert "surely_not_installed_mod" in text


# --- lazy imports ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("category", "name", "module"),
    [
        (Category.VECTOR_STORE, "faiss", "flightdeck.retrieval.stores.faiss"),
        (Category.EMBEDDER, "sentence_transformers", "flightdeck.retrieval.embedders.sentence_transformers"),
        (Category.SOURCE, "files", "flightdeck.data.sources.files"),
        (Category.CHUNKER, "recursive", "flightdeck.data.chunkers.recursive"),
    ],
)
def test_config_class_is_a_pydantic_model(category: Category, name: str, module: str) -> None:
    cls = registry().config_class(category, name)
    assert isinstance(cls, type) and issubclass(cls, BaseModel)
    assert cls.__module__ == module
    assert cls.model_config.get("extra") == "forbid"
    assert cls.model_config.get("frozen") is True


def test_config_class_is_none_for_flavors_without_settings() -> None:
    assert registry().config_class(Category.RETRIEVAL_FEATURE, "hybrid_search") is None


def _modules_after(code: str) -> set[str]:
    probe = code + "\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))\n"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_spec_loader_registry_and_cli_import_no_optional_library() -> None:
    loaded = _modules_after("import flightdeck.spec.loader, flightdeck.registry, flightdeck.cli.main")
    assert "flightdeck.cli.main" in loaded  # the probe really ran the imports
    assert {m for m in loaded if m.split(".")[0] in HEAVY} == set()


def test_config_classes_import_without_their_implementation_library() -> None:
    loaded = _modules_after(textwrap.dedent("""
        from flightdeck.registry import Category, registry
        r = registry()
        assert r.config_class(Category.VECTOR_STORE, "faiss").__name__ == "FaissConfig"
        assert r.config_class(Category.EMBEDDER, "sentence_transformers").__name__ == "SentenceTransformersConfig"
        assert r.config_class(Category.SOURCE, "files").__name__ == "FilesConfig"
    """))
    assert "flightdeck.retrieval.stores.faiss" in loaded
    assert {m for m in loaded if m.split(".")[0] in HEAVY} == set()


def test_validating_the_example_spec_imports_no_optional_library() -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "python-docs" / "flightdeck.yaml"
    loaded = _modules_after(textwrap.dedent(f"""
        from flightdeck.spec.loader import check_spec
        spec, problems = check_spec({str(example)!r})
        assert problems == [], [str(p) for p in problems]
    """))
    assert {m for m in loaded if m.split(".")[0] in HEAVY} == set()


# --- entry-point plugins ----------------------------------------------------------------------------------------


def _write_plugin(root: Path, dist: str, module: str, entry_points: str, body: str) -> None:
    info = root / f"{dist}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{entry_points}\n")
    (root / f"{module}.py").write_text(body)


@pytest.fixture
def plugin_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    added_before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - added_before:
        if name.startswith("myplug"):
            del sys.modules[name]
    importlib.invalidate_caches()


def test_entry_point_plugin_registers_a_provider(plugin_path: Path) -> None:
    _write_plugin(plugin_path, "myplug", "myplug_mod", "mystore = myplug_mod:FLAVOR", textwrap.dedent("""
        from flightdeck.registry import Category, Flavor

        FLAVOR = Flavor(Category.VECTOR_STORE, "mystore", "myplug_mod:Store", extra="mystore",
                        options=("retrieval.vector_database.chroma",))

        class Store:
            pass
    """))
    importlib.invalidate_caches()
    reg = Registry()
    assert "mystore" in reg.names(Category.VECTOR_STORE)
    assert "faiss" in reg.names(Category.VECTOR_STORE)
    assert reg.plugin_errors == []
    assert reg.load(Category.VECTOR_STORE, "mystore").__name__ == "Store"
    # the plugin implements its option, after whatever built-ins implement it
    builtin = [f.name for f in Registry(plugins=False).for_option("retrieval.vector_database.chroma")]
    assert "mystore" not in builtin
    assert [f.name for f in reg.for_option("retrieval.vector_database.chroma")] == [*builtin, "mystore"]
    # plugins=False keeps only the given flavors
    assert "mystore" not in Registry(plugins=False).names(Category.VECTOR_STORE)


def test_entry_point_may_name_a_callable_returning_several_flavors(plugin_path: Path) -> None:
    _write_plugin(plugin_path, "myplug_multi", "myplug_multi_mod", "several = myplug_multi_mod:flavors",
                  textwrap.dedent("""
        from flightdeck.registry import Category, Flavor

        def flavors():
            return [Flavor(Category.VECTOR_STORE, "store_a", "x:A"),
                    Flavor(Category.EMBEDDER, "embed_b", "x:B")]
    """))
    importlib.invalidate_caches()
    reg = Registry()
    assert "store_a" in reg.names(Category.VECTOR_STORE)
    assert "embed_b" in reg.names(Category.EMBEDDER)
    assert reg.plugin_errors == []


def test_broken_plugin_is_recorded_not_raised(plugin_path: Path) -> None:
    _write_plugin(plugin_path, "myplug_broken", "myplug_broken_mod",
                  "broken = myplug_broken_mod:NOPE\nwrongtype = myplug_broken_mod:NOT_A_FLAVOR",
                  "NOT_A_FLAVOR = [42]\n")
    importlib.invalidate_caches()
    reg = Registry()
    names = reg.names(Category.VECTOR_STORE)  # must not raise
    assert "faiss" in names
    assert len(reg.plugin_errors) == 2, reg.plugin_errors
    broken = next(e for e in reg.plugin_errors if "'broken'" in e)
    assert "myplug_broken_mod:NOPE" in broken
    wrong = next(e for e in reg.plugin_errors if "'wrongtype'" in e)
    assert "expected a Flavor, got int" in wrong


def test_every_builtin_flavor_imports_its_implementation_and_config() -> None:
    """A registered name must point at code that exists: `ready` is computed from this table.

    On an install without a flavor's extra, an implementation that needs its library at import (an adapter
    subclasses its framework's class) must say which extra to install; the test then skips, naming those.
    """
    from flightdeck.registry import BUILTIN_FLAVORS
    from flightdeck.registry.lookup import _import_path

    reg = Registry(plugins=False)
    unchecked: list[str] = []
    for flavor in BUILTIN_FLAVORS:
        try:
            impl = _import_path(flavor.impl)
        except MissingDependencyError as e:
            if not reg.missing_modules(flavor):
                raise
            assert reg.install_hint(flavor) in str(e), (flavor, str(e))
            unchecked.append(f"{flavor.name} ({reg.install_hint(flavor)})")
        else:
            assert callable(impl), flavor
        if flavor.config:
            assert hasattr(_import_path(flavor.config), "model_fields"), flavor
    if unchecked:
        pytest.skip(f"every other implementation imports; these need their extras here: {', '.join(unchecked)}")
