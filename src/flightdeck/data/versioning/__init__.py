"""Data versioning and lineage providers (checklist 1.2): DVC, lakeFS, OpenLineage (for DataHub, Marquez...).

The built-in dataset versions (every ingest, always on) live in :mod:`flightdeck.governance.versions`;
the providers here add to them: ``dvc`` and ``lakefs`` record what the external system holds in the
dataset version's manifest, ``openlineage`` emits OpenLineage run events for every step. Each one is a
:class:`~flightdeck.core.RunHook`, built by the pipeline's assembly (:mod:`flightdeck.pipeline.assembly`).
"""

from __future__ import annotations

__all__: list[str] = []
