"""Exceptions for people: each says what failed, where, and what to do next."""

from __future__ import annotations

from typing import Any

__all__ = [
    "api_error_message",
    "FlightdeckError",
    "SpecError",
    "SpecProblem",
    "UnknownProviderError",
    "MissingDependencyError",
    "WorkspaceError",
    "IndexMismatchError",
    "SourceError",
]


class FlightdeckError(Exception):
    """Base class of every error flightdeck raises on purpose."""


class SpecProblem:
    """One problem in a spec, with its position (1-based line and column) when known."""

    __slots__ = ("path", "line", "column", "location", "message")

    def __init__(self, path: str, location: str, message: str, line: int | None = None,
                 column: int | None = None) -> None:
        self.path = path
        self.location = location
        self.message = message
        self.line = line
        self.column = column

    def __str__(self) -> str:
        where = self.path
        if self.line is not None:
            where += f":{self.line}:{self.column or 1}"
        loc = f" {self.location}:" if self.location else ""
        return f"{where}:{loc} {self.message}"

    def to_dict(self) -> dict[str, object]:
        return {"file": self.path, "line": self.line, "column": self.column,
                "location": self.location, "message": self.message}


class SpecError(FlightdeckError):
    """A spec failed validation; ``problems`` lists every problem found, not just the first."""

    def __init__(self, problems: list[SpecProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class UnknownProviderError(FlightdeckError, LookupError):
    """A provider name that the registry does not know; the message lists the valid names."""


class MissingDependencyError(FlightdeckError, ImportError):
    """A provider whose optional dependency is not installed; the message names the pip extra."""


class WorkspaceError(FlightdeckError):
    """The workspace (metadata DB, artifacts) is missing, locked or inconsistent."""


class IndexMismatchError(FlightdeckError):
    """The index was built with another embedding model or dimension than the one configured."""


class SourceError(FlightdeckError):
    """A source could not be read at all (as opposed to one bad item, which is reported and skipped)."""


def api_error_message(exc: Any, limit: int = 300) -> str:
    """The server's own message in an API SDK's error (OpenAI, Anthropic and compatible servers put it in
    ``{"error": {"message": ...}}``; some servers in ``{"detail": ...}``), without the SDK's boilerplate."""
    body = getattr(exc, "body", None)
    message = None
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            message = str(inner["message"])
        elif isinstance(body.get("detail"), str):
            message = body["detail"]
    return (message or str(getattr(exc, "message", None) or exc))[:limit]
