"""How long operations tell what they do: the Reporter protocol (Rich and JSON reporters are in
flightdeck.pipeline.progress, which presents; this is what providers and steps call)."""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["Reporter", "NullReporter"]


class Reporter(Protocol):
    def event(self, name: str, **fields: Any) -> None: ...

    def progress(self, step: str, done: int, total: int) -> None: ...

    def close(self) -> None: ...


class NullReporter:
    """Reports nothing (library use)."""

    def event(self, name: str, **fields: Any) -> None:
        pass

    def progress(self, step: str, done: int, total: int) -> None:
        pass

    def close(self) -> None:
        pass
