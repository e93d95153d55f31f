"""Every keyword index passes the keyword index contract (flightdeck.testing.keyword_contract): bm25 and fts5 on
the embedded workspace, postgres against this machine's PostgreSQL server (127.0.0.1:5432, database ``test``;
skipped when it is not running). Each is built through the registry, as ``retrieval.search.keyword_index``
builds it."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from flightdeck.registry import Category
from flightdeck.retrieval.keyword import KeywordIndex, keyword_index_for
from flightdeck.spec.models import SearchSettings
from flightdeck.testing.keyword_contract import KeywordIndexContract
from flightdeck.workspace import Workspace
from needs import needs_provider


def _maker(**settings: str) -> Callable[[Workspace], KeywordIndex]:
    search = SearchSettings(**settings)
    return lambda ws: keyword_index_for(search, ws, "test_keyword_contract")


@pytest.mark.unit
@needs_provider(Category.KEYWORD_INDEX, "bm25")
class TestBm25(KeywordIndexContract):
    @pytest.fixture
    def make_index(self) -> Callable[[Workspace], KeywordIndex]:
        return _maker(keyword_index="bm25")


@pytest.mark.unit
class TestFts5(KeywordIndexContract):
    @pytest.fixture
    def make_index(self) -> Callable[[Workspace], KeywordIndex]:
        return _maker(keyword_index="fts5")


@pytest.mark.integration
@needs_provider(Category.KEYWORD_INDEX, "postgres")
class TestPostgres(KeywordIndexContract):
    @pytest.fixture
    def make_index(self, pg_url: str) -> Callable[[Workspace], KeywordIndex]:
        return _maker(keyword_index="postgres", keyword_url=pg_url)
