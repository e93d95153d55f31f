"""Fuzz the spec loader: any file gives a loaded spec or a ``SpecError`` whose problems say file:line:column.

Never another exception, and never a hang: a billion-laughs alias bomb, a file nested thousands of levels
deep, bytes that are not UTF-8, control characters and numbers of thousands of digits are all problems
with a position. Inputs: arbitrary bytes and text, YAML-ish text made of the spec's own keys and YAML's
syntax, specs built from the catalog's sections and the providers' settings (right and wrong types) and
dumped as YAML, and mutations of a valid spec. See ``fuzzing.py`` for running them longer.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fuzzing import fuzz_settings
from hypothesis import example, given
from hypothesis import strategies as st
from ruamel.yaml import YAML

from flightdeck.errors import SpecError
from flightdeck.registry import Category, registry
from flightdeck.spec.catalog import catalog
from flightdeck.spec.loader import MAX_DEPTH, LoadedSpec, load_spec

pytestmark = pytest.mark.unit

VALID = """\
project: demo
scoping: {use_case: rag, objective: retrieval_system}
data:
  sources:
    - {provider: files, path: ./docs, include: ["**/*.md"]}
  preprocessing: [cleaning_normalization, tokenization, chunking, embedding_generation]
  chunking: {provider: recursive, size: 128, overlap: 16}
retrieval:
  embedding_model: sentence_transformers
  vector_database: faiss
  system: [hybrid_search, metadata_filtering]
  search: {mode: hybrid, k: 5}
model:
  generator: {provider: extractive, max_sentences: 3}
"""
# The longest a single check may take: the alias bomb took 35 s and deep nesting 6 s before they were bounded.
SECONDS = 5.0


@pytest.fixture(scope="module")
def spec_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fuzz-spec")
    (root / "docs").mkdir()
    return root / "flightdeck.yaml"


def _check(path: Path, data: bytes) -> LoadedSpec | SpecError:
    """Load ``data`` as the spec at ``path``: a spec, or a SpecError whose every problem has a position."""
    path.write_bytes(data)
    text = data.decode("utf-8", errors="replace")
    lines = sum(text.count(brk) for brk in "\n\r\x85\u2028\u2029") + 1  # YAML's line breaks (at most)
    start = time.monotonic()
    try:
        outcome: LoadedSpec | SpecError = load_spec(path)
    except SpecError as e:
        outcome = e
        assert e.problems
        for p in e.problems:
            assert p.path == str(path.resolve())
            assert p.message.strip()
            assert isinstance(p.line, int) and 1 <= p.line <= lines, (p.line, lines, str(p))
            assert isinstance(p.column, int) and p.column >= 1, str(p)
            assert str(p).startswith(f"{p.path}:{p.line}:{p.column}:")
    else:
        assert outcome.spec.project
    assert time.monotonic() - start < SECONDS
    return outcome


# --- regressions: each of these crashed or hung the loader ------------------------------------------------------

def _bomb(levels: int = 9) -> str:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\nproject: demo\n"


@pytest.mark.parametrize("data,line,column,message", [
    # UnicodeDecodeError: the file was read as UTF-8 without a guard
    (b"project: demo\nworkspace: caf\xe9\n", 2, 15, "not UTF-8 text (byte 0xe9 cannot be decoded)"),
    # ruamel's ReaderError is not a MarkedYAMLError: it escaped check_spec
    (b"project: de\x00mo\n", 1, 12, "character U+0000 is not allowed"),
    (b"project: demo\nworkspace: \x07\n", 2, 12, "character U+0007 is not allowed"),
    # RecursionError after 6 s in ruamel's composer
    # (the document's own mapping is the first level, so the 50th "[" is one too many)
    (b"project: demo\nworkspace: " + b"[" * 3000 + b"]" * 3000 + b"\n", 2, 11 + MAX_DEPTH,
     f"nested more than {MAX_DEPTH} levels deep"),
    (b"project:\n" + b"".join(b"  " * i + b"k:\n" for i in range(1, 600)), 51, 101,
     f"nested more than {MAX_DEPTH} levels deep"),
    # ValueError from int(): more digits than Python converts (4300)
    (b"project: demo\nretrieval:\n  search: {k: " + b"9" * 5000 + b"}\n", 3, 15, "a number with 5,000 digits"),
    # ruamel's constructors fail without a position: IndexError, ValueError, KeyError escaped check_spec
    (b"project: demo\nworkspace: !!int ''\n", 2, 12, "cannot read this value (IndexError: "),
    (b"project: demo\nworkspace: 2001-13-45\n", 2, 12, "cannot read this value (ValueError: month must be in"),
    (b"project: demo\nscoping:\n  use_case: !!bool maybe\n", 3, 13, "cannot read this value (KeyError: "),
    # a key that is a mapping holding a list: ruamel's TypeError (unhashable CommentedSeq)
    (b"project: demo\ndata:\n  ? sources:\n    - {provider: files}\n", 3, 5, "a key that is a list or a mapping"),
    # alias bomb: 10**9 values once expanded; took 35 s at 10**6 before, would not end at 10**9
    (_bomb().encode(), 5, 45, "expand the spec to more than 100,000 values"),
])
def test_malformed_files_are_problems_with_their_position(spec_path, data, line, column, message):
    err = _check(spec_path, data)
    assert isinstance(err, SpecError)
    [problem] = err.problems
    assert (problem.line, problem.column) == (line, column), str(problem)
    assert message in problem.message


@pytest.mark.parametrize("settings,location", [
    # check_rules ran on specs whose settings were already reported, and crashed on int("abc"), int([1])
    ("data.chunking: {provider: recursive, size: abc}", "data.chunking.size"),
    ("data.chunking: {provider: fixed, size: [1], overlap: 0}", "data.chunking.size"),
    # ... and on Path([1]), Path(5) for the embedding model's folder
    ("retrieval.embedding_model: {provider: sentence_transformers, model: [1]}", "retrieval.embedding_model.model"),
    ("retrieval.embedding_model: {provider: sentence_transformers, model: 5}", "retrieval.embedding_model.model"),
])
def test_rules_skip_settings_that_are_already_reported(spec_path, settings, location):
    key, value = settings.split(": ", 1)
    phase, name = key.split(".")
    text = VALID.replace(f"{phase}:\n", f"{phase}:\n  {name}: {value}\n", 1)
    lines = [line for line in text.splitlines() if not (line.startswith(f"  {name}:") and value not in line)]
    err = _check(spec_path, ("\n".join(lines) + "\n").encode())
    assert isinstance(err, SpecError)
    # (other problems may join it where this install lacks an option the spec names: not what is tested)
    assert location in [p.location for p in err.problems], [str(p) for p in err.problems]


@pytest.mark.parametrize("key", ["[", "function", "list[str]"])
def test_a_key_that_looks_like_a_pydantic_branch_name_is_reported(spec_path, key):
    # IndexError: the key was taken for a pydantic union branch name and dropped from the location
    err = _check(spec_path, f"'{key}': []\nproject: demo\n".encode())
    assert isinstance(err, SpecError)
    assert [(p.location, p.line, p.column) for p in err.problems] == [(key, 1, 1)]
    assert f"unknown key '{key}'" in err.problems[0].message


def test_a_missing_required_key_is_a_problem_of_line_one(spec_path):
    err = _check(spec_path, b"workspace: .fd\n")
    assert isinstance(err, SpecError)
    assert any(p.location == "project" and (p.line, p.column) == (1, 1) for p in err.problems)


# --- properties -------------------------------------------------------------------------------------------------

@given(st.binary(max_size=300))
@fuzz_settings(60)
@example(b"\xef\xbb\xbfproject: demo\n")
@example(b"\xff\xfeproject: demo\n")
@example(b"\tproject: demo\n")
def test_arbitrary_bytes(spec_path, data):
    _check(spec_path, data)


@given(st.text(max_size=300))
@fuzz_settings(60)
@example("project: demo\n---\nproject: other\n")
@example("\r{")  # an error on line 2: "\r" is a line break to YAML
@example("%YAML 9.9\n---\nproject: demo\n")
@example("? [a, b]\n: 1\nproject: demo\n")
@example("project: !!python/object/apply:os.system [echo]\n")
def test_arbitrary_text(spec_path, text):
    _check(spec_path, text.encode("utf-8"))


_CATALOG = catalog()
_PHASES = [p.key for p in _CATALOG.phases]
_SECTIONS = {p.key: [s.key for s in p.sections] for p in _CATALOG.phases}
_OPTION_IDS = sorted({o for s in _CATALOG.sections for o in s.option_ids})
_CATEGORIES = [Category.SOURCE, Category.CHUNKER, Category.EMBEDDER, Category.VECTOR_STORE, Category.GENERATOR,
               Category.QUERY_TRANSFORMATION, Category.VERSIONING, Category.SPLITTER]
_PROVIDERS = sorted({n for c in _CATEGORIES for n in registry().names(c)})


def _setting_names() -> list[str]:
    names: set[str] = {"search", "chunking", "cleaning", "generator", "query_transformation", "provider"}
    for category in _CATEGORIES:
        for name in registry().names(category):
            cls = registry().config_class(category, name)
            names.update(getattr(cls, "model_fields", {}))
    return sorted(names)


_KEYS = sorted({"project", "workspace", *_PHASES, *(k for ks in _SECTIONS.values() for k in ks), *_setting_names()})
_YAML_TOKENS = [": ", ":", "\n", "\n  ", "\n    ", "- ", "[", "]", "{", "}", ", ", "&a ", "*a", "<<: *a", "!!binary ",
                "!tag ", "!!str ", "!!int ", "? ", "'", '"', "#", "|", ">", "~", "null", "true", "no", ".inf", ".nan",
                "0x1F", "0o17", "1e400", "-0", "2001-12-14", "12:30:45", "9" * 40, "${ENV}", "\t", "\ufeff", "é",
                "漢字", "\u200b", "\\", "%YAML 1.2\n", "---\n", "...\n", "@", "`"]
_scalars = st.one_of(
    st.sampled_from(_OPTION_IDS + _PROVIDERS),
    st.text(max_size=12),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(_KEYS) | st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12,
)
_provider_entries = st.builds(
    lambda name, settings: {"provider": name, **settings},
    st.sampled_from(_PROVIDERS) | _scalars,
    st.dictionaries(st.sampled_from(_KEYS), _values, max_size=3),
)
_section_values = st.one_of(
    st.sampled_from(_OPTION_IDS + _PROVIDERS),
    st.lists(st.sampled_from(_OPTION_IDS + _PROVIDERS), max_size=4),
    _provider_entries,
    st.lists(_provider_entries, max_size=3),
    _values,
)


@st.composite
def _phase(draw: st.DrawFn, phase: str) -> dict:
    keys = _SECTIONS.get(phase, []) + ["chunking", "cleaning", "search", "generator", "query_transformation"]
    return draw(st.dictionaries(st.sampled_from(keys) | st.text(max_size=8), _section_values, max_size=4))


@st.composite
def _specs(draw: st.DrawFn) -> dict:
    spec: dict = {}
    if draw(st.booleans()):
        spec["project"] = draw(st.sampled_from(["demo"]) | _scalars)
    for phase in draw(st.lists(st.sampled_from(_PHASES), max_size=4, unique=True)):
        spec[phase] = draw(_phase(phase) | _values)
    spec.update(draw(st.dictionaries(st.sampled_from(_KEYS) | st.text(max_size=8), _values, max_size=2)))
    return spec


def _dump(data: object, flow: bool) -> str:
    import io

    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = flow
    out = io.StringIO()
    yaml.dump(data, out)
    return out.getvalue()


@given(_specs(), st.booleans())
@fuzz_settings(80)
def test_specs_built_from_the_catalog(spec_path, spec, flow):
    _check(spec_path, _dump(spec, flow).encode("utf-8"))


@given(st.lists(st.sampled_from(_KEYS) | st.sampled_from(_YAML_TOKENS) | st.sampled_from(_OPTION_IDS + _PROVIDERS)
                | st.text(max_size=4), max_size=60))
@fuzz_settings(80)
@example(["!!int "])
@example(["? ", "[", "a", "]", "\n", ": 1"])
def test_yaml_ish_text_from_the_spec_keys(spec_path, tokens):
    _check(spec_path, "".join(tokens).encode("utf-8"))


@st.composite
def _mutations(draw: st.DrawFn) -> str:
    text = VALID
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        kind = draw(st.sampled_from(["insert", "delete", "replace", "duplicate_line"]))
        if kind == "insert":
            text = text[:at] + draw(st.sampled_from(_YAML_TOKENS) | st.text(max_size=3)) + text[at:]
        elif kind == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 12)):]
        elif kind == "replace":
            text = text[:at] + draw(st.characters()) + text[at + 1:]
        else:
            lines = text.splitlines(keepends=True)
            i = draw(st.integers(0, len(lines) - 1))
            text = "".join(lines[:i + 1] + lines[i:])
    return text


@given(_mutations())
@fuzz_settings(80)
def test_mutations_of_a_valid_spec(spec_path, text):
    _check(spec_path, text.encode("utf-8", errors="surrogatepass"))
