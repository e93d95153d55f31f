"""Phase 8, governance: dataset versions and lineage queries over the workspace.

The modules hold plain functions that take a :class:`~flightdeck.workspace.Workspace`; the CLI and
:class:`~flightdeck.Project` are thin shells over them. Nothing here imports an optional library.
"""

from __future__ import annotations

__all__: list[str] = []
