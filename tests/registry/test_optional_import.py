"""optional_import and the errors for a missing library or program: one wording, one install hint."""

from __future__ import annotations

import sys

import pytest

import flightdeck.registry.lookup as lookup
from flightdeck.errors import MissingDependencyError
from flightdeck.registry import Registry
from flightdeck.registry.lookup import (
    missing_dependency,
    missing_program,
    optional_import,
    pip_install_hint,
    program_hint,
)

pytestmark = pytest.mark.unit


MISSING = "flightdeck_test_surely_not_installed"


def test_a_missing_library_names_what_needs_it_the_extra_and_the_module() -> None:
    with pytest.raises(MissingDependencyError) as info:
        optional_import(MISSING, "eval", "retrieval evaluation")
    assert str(info.value) == f"retrieval evaluation needs: pip install 'flightdeck[eval]' (missing: {MISSING})"
    assert isinstance(info.value.__cause__, ImportError)
    with pytest.raises(MissingDependencyError, match=rf"^{MISSING} needs: "):  # without a purpose: the module
        optional_import(MISSING, "eval")


def test_a_submodule_is_returned_and_a_missing_parent_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    import email.utils

    assert optional_import("email.utils", "x") is email.utils
    with pytest.raises(MissingDependencyError, match=rf"\(missing: {MISSING}\)$"):  # what is missing: the parent
        optional_import(f"{MISSING}.sub", "x", "reading mail")
    monkeypatch.setitem(sys.modules, "email.utils", None)  # the parent is there, the submodule is not
    with pytest.raises(MissingDependencyError, match=r"\(missing: email\.utils\)$"):
        optional_import("email.utils", "x", "reading mail")


def test_an_alternative_and_an_install_command_of_a_base_dependency() -> None:
    with pytest.raises(MissingDependencyError) as info:
        optional_import(MISSING, "cleaning", "language detection", alternative="set language: false")
    assert str(info.value).endswith(f"(missing: {MISSING}), or set language: false")
    with pytest.raises(MissingDependencyError) as info:
        optional_import(MISSING, None, "tokenization", install="pip install 'tokenizers>=0.15'")
    assert str(info.value) == f"tokenization needs: pip install 'tokenizers>=0.15' (missing: {MISSING})"
    assert "flightdeck[" not in str(info.value)
    with pytest.raises(ValueError, match="an extra or an install command"):
        missing_dependency("x", None)


def test_an_imported_library_is_told_to_the_observer(monkeypatch: pytest.MonkeyPatch) -> None:
    told: list[list[str]] = []
    monkeypatch.setattr(lookup, "requirement_observer", told.append)
    optional_import("email.utils", "x")
    with pytest.raises(MissingDependencyError):
        optional_import(MISSING, "x")
    assert told == [["email.utils"]]  # what was missing was not needed by a passing test


def test_the_install_hint_is_written_once_for_the_registry_and_the_guards() -> None:
    assert pip_install_hint("chroma") == "pip install 'flightdeck[chroma]'"
    reg = Registry(plugins=False)
    for flavor in reg.flavors():
        assert reg.install_hint(flavor) == pip_install_hint(flavor.extra or flavor.name)


def test_a_missing_program_says_how_to_get_it() -> None:
    assert program_hint("tesseract") == "the `tesseract` program on PATH (apt-get install tesseract-ocr)"
    assert program_hint("/opt/bin/tesseract").endswith("(apt-get install tesseract-ocr)")
    assert program_hint("frobnicate") == "the `frobnicate` program on PATH (install it)"
    error = missing_program("tesseract", "OCR")
    assert isinstance(error, MissingDependencyError)
    assert str(error) == "OCR needs the `tesseract` program on PATH (apt-get install tesseract-ocr)"
