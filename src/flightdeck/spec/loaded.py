"""A validated spec with the file it came from: what the loader returns and the rules read."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["LoadedSpec", "Loc"]

# Where a value sits in the spec: its keys and list indexes from the top, e.g. ("data", "sources", 0).
Loc = tuple[str | int, ...]


@dataclass
class LoadedSpec:
    """A validated spec, the file it came from, and where each value sits in that file."""

    spec: Any  # an instance of spec_model()
    path: Path
    raw: dict[str, Any]
    positions: dict[Loc, tuple[int, int]] = field(default_factory=dict)

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def position(self, loc: Loc) -> tuple[int, int] | None:
        """(line, column), 1-based, of the value at ``loc`` or of its closest parent."""
        loc = tuple(loc)
        while loc:
            if loc in self.positions:
                return self.positions[loc]
            loc = loc[:-1]
        return None
