"""One chunker config (size/overlap: ChunkerConfig) and one chunk-size rule (flightdeck.core.chunking)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from flightdeck.core import SPECIAL_TOKENS, chunk_size_error, chunk_token_window, fit_chunk_size
from flightdeck.data.chunkers.base import ChunkerConfig
from flightdeck.registry import Category, registry

pytestmark = pytest.mark.unit

# What each built-in chunker had before the shared base: the base must not change a default.
DEFAULTS = {"recursive": (256, 32), "fixed": (256, 32), "markdown": (256, 32), "sentence": (256, 0),
            "semantic": (256, 0)}


def test_every_built_in_chunker_config_is_a_chunker_config_with_its_defaults() -> None:
    built_in = {f.name for f in registry().flavors(Category.CHUNKER) if f.config and f.config.startswith("flightdeck.")}
    assert built_in == set(DEFAULTS)
    for name, (size, overlap) in DEFAULTS.items():
        config_cls = registry().config_class(Category.CHUNKER, name)
        assert issubclass(config_cls, ChunkerConfig), name
        config = config_cls()
        assert (config.size, config.overlap) == (size, overlap), name
        assert list(config_cls.model_fields)[:2] == ["size", "overlap"], name  # the cache key's order is kept


@pytest.mark.parametrize("name", sorted(DEFAULTS))
def test_size_and_overlap_are_checked_alike(name: str) -> None:
    config_cls = registry().config_class(Category.CHUNKER, name)
    with pytest.raises(ValidationError, match="greater than or equal to 16"):
        config_cls(size=15, overlap=0)
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        config_cls(overlap=-1)
    with pytest.raises(ValidationError, match=r"overlap \(8\) must be less than half of size \(16\); "
                                              r"set overlap to at most 7 or raise size"):
        config_cls(size=16, overlap=8)
    assert config_cls(size=16, overlap=7).overlap == 7
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        config_cls(sise=100)
    with pytest.raises(ValidationError, match="frozen"):
        config_cls().size = 100  # type: ignore[misc]


def test_the_chunk_token_window_leaves_room_for_the_special_tokens() -> None:
    assert SPECIAL_TOKENS == 2  # [CLS] and [SEP]
    assert chunk_token_window(256) == 254  # all-MiniLM-L6-v2, the default embedding model
    assert chunk_token_window(512) == 510


def test_a_run_lowers_the_size_to_the_window_and_keeps_a_smaller_one() -> None:
    assert fit_chunk_size(256, 256) == 254  # the default spec: chunks of 254 tokens
    assert fit_chunk_size(1000, 256) == 254
    assert fit_chunk_size(254, 256) == 254
    assert fit_chunk_size(200, 256) == 200


def test_validate_refuses_only_a_size_above_the_model_maximum() -> None:
    # Up to the maximum itself is accepted (and lowered by the run): the default 256 with a 256-token model.
    assert chunk_size_error(256, 256) is None
    assert chunk_size_error(255, 256) is None
    assert chunk_size_error(257, 256) == ("chunk size 257 exceeds the embedding model's maximum sequence length 256;"
                                          " set size <= 256.")
