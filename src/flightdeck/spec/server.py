"""``deployment.server``: the limits, prices and traces of ``flightdeck serve`` (checklist 5.3, 8.3, 7.4)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ServerSettings", "Limits", "Price"]


class Limits(BaseModel):
    """What one API key may use; unset is unlimited."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    requests_per_minute: int | None = Field(None, ge=1, description="requests per key per minute (a token "
                                            "bucket: short bursts up to this many are let through)")
    tokens_per_day: int | None = Field(None, ge=1, description="LLM tokens (prompt + answer) per key per day")


class Price(BaseModel):
    """What a model costs, in US dollars per million tokens."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    input_per_million: float = Field(0.0, ge=0)
    output_per_million: float = Field(0.0, ge=0)


class ServerSettings(BaseModel):
    """``deployment.server``: how ``flightdeck serve`` limits, prices and traces requests."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    request_timeout_s: float = Field(60.0, gt=0, le=3600, description="a request still running after this "
                                     "many seconds gets 504 (a stream is stopped)")
    max_k: int = Field(100, ge=1, le=1000, description="the most hits one search may ask for")
    max_tokens: int = Field(1024, ge=1, le=32768, description="the most tokens one answer may ask for")
    limits: Limits = Field(default_factory=Limits, description="per-key limits of every key")
    role_limits: dict[str, Limits] = Field(default_factory=dict, description="per-key limits by role "
                                           "(viewer, editor, approver, admin), over `limits`")
    prices: dict[str, Price] = Field(default_factory=dict, description="per-model prices for the cost metric; "
                                     "keys are generator ids such as 'openai:api.openai.com/gpt-4o-mini'")
    store_traces: bool = Field(True, description="store every answer's trace in the workspace")
