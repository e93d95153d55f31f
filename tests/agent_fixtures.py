"""Tools and chat stores that specs in the agent tests name by import path (``agent_fixtures:…``): the tests folder
is on sys.path under pytest, as a team's own package would be on theirs."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from flightdeck.agents.tools.custom import tool


@tool
def shipping_quote(weight_kg: Annotated[float, Field(gt=0, description="the parcel's weight")],
                   express: bool = False) -> dict[str, float]:
    """The shipping price of a parcel, in euros."""
    return {"eur": round(4.5 + 1.2 * weight_kg + (6.0 if express else 0.0), 2)}


def word_count_tool():  # noqa: ANN201 - returns a LangChain tool; langchain-core is imported here only
    """A LangChain tool, made by a factory the spec names."""
    from langchain_core.tools import tool as lc_tool

    @lc_tool
    def count_words(text: str) -> int:
        """Count the words in a text."""
        return len(text.split())

    return count_words
