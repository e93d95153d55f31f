"""The bodies of ``/v1/search`` and ``/v1/query`` (pydantic, no web framework), shared by the FastAPI app and the
Flask blueprint, and the caps every transport applies."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["SearchRequest", "QueryRequest", "AgentRunRequest", "ReviewRequest", "PromoteRequest", "RollbackRequest",
           "MAX_BODY_BYTES", "MAX_TEXT", "CONVERSATION_ID"]

# Requests larger than this are refused (413): by their Content-Length before they are read, and while they are
# read when they come without one (chunked).
MAX_BODY_BYTES = 1 << 20
MAX_TEXT = 4000
CONVERSATION_ID = r"^[A-Za-z0-9_.:-]+$"


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str = Field(min_length=1, max_length=MAX_TEXT, description="what to search for")
    k: int | None = Field(None, ge=1, le=100, description="how many chunks (default: the spec's retrieval.search.k)")
    mode: Literal["hybrid", "vector", "keyword"] | None = None
    where: dict[str, Any] | None = Field(None, description='a metadata filter, e.g. {"lang": "en"}')


class QueryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str = Field(min_length=1, max_length=MAX_TEXT, description="the question to answer from the documents")
    stream: bool = Field(False, description="server-sent events: `sources`, then `token` per piece of text, "
                                            "then `answer` (the checked answer with its citations)")
    conversation_id: str | None = Field(None, min_length=1, max_length=64, pattern=CONVERSATION_ID,
                                        description="a follow-up in this conversation: the earlier questions "
                                                    "asked with this id (by this key) shape what is retrieved")
    max_tokens: int | None = Field(None, ge=1, le=32768, description="cap on the answer's tokens (LLMs)")


class AgentRunRequest(BaseModel):
    """``POST /v1/agents/{name}/runs``."""

    model_config = ConfigDict(extra="forbid")
    question: str = Field(min_length=1, max_length=MAX_TEXT, description="what to ask the agent")
    conversation_id: str | None = Field(None, min_length=1, max_length=64, pattern=CONVERSATION_ID,
                                        description="continue this conversation of this key (agents.memory)")
    stream: bool = Field(False, description="server-sent events: one `step` per step as it ends, then `run`")


class ReviewRequest(BaseModel):
    """``POST /v1/releases/{ref}/approve`` and ``/reject``."""

    model_config = ConfigDict(extra="forbid")
    comment: str | None = Field(None, max_length=MAX_TEXT, description="why, kept with the review")


class PromoteRequest(BaseModel):
    """``POST /v1/releases/{ref}/promote``."""

    model_config = ConfigDict(extra="forbid")
    stage: Literal["staging", "production"] = "production"
    override_reason: str | None = Field(None, min_length=1, max_length=MAX_TEXT,
                                        description="promote although evaluation gates failed, for this recorded "
                                                    "reason (admin; approvals and integrity are still required)")
    comment: str | None = Field(None, max_length=MAX_TEXT)


class RollbackRequest(BaseModel):
    """``POST /v1/releases/rollback``."""

    model_config = ConfigDict(extra="forbid")
    to: str | None = Field(None, max_length=200, description="a release that was in production before (default: "
                                                            "the one before the current)")
    comment: str | None = Field(None, max_length=MAX_TEXT)
