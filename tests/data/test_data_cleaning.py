import pytest

from flightdeck.data.cleaning import clean_text

pytestmark = pytest.mark.unit


@pytest.mark.exercises("data.preprocessing.cleaning_normalization")
def test_nfkc_folds_compatibility_forms():
    # ligature, full-width letters, non-breaking space
    assert clean_text("ﬁle ＡＢＣ a\u00a0b") == "file ABC a b"


def test_line_endings_become_newlines():
    assert clean_text("a\r\nb\rc\n") == "a\nb\nc"


def test_control_characters_dropped_but_tab_and_newline_kept():
    assert clean_text("a\x00b\x07c\x1b\td\ne\x7f") == "abc\td\ne"


def test_trailing_spaces_stripped_per_line():
    assert clean_text("one   \ntwo\t \nthree") == "one\ntwo\nthree"


def test_runs_of_blank_lines_collapse_to_one():
    assert clean_text("a\n\n\n\n\nb\n\nc") == "a\n\nb\n\nc"
    assert clean_text("a\n \n\t\n  \nb") == "a\n\nb"


def test_leading_indentation_kept():
    code = "def f():\n    return 1\n\n        nested"
    assert clean_text(code) == code
    assert clean_text("\n\n    indented first line\n\n") == "    indented first line"


def test_whitespace_only_becomes_empty():
    assert clean_text(" \n\t\r\n  ") == ""


def test_idempotent():
    text = "Title\r\n\r\n\r\n\r\nﬁrst  \x0c\n    code\t\n"
    once = clean_text(text)
    assert clean_text(once) == once
