"""Model registries (checklist 5.4, ``deployment.model_registry``): MLflow, W&B Artifacts, SageMaker and Vertex AI
mirror the workspace's releases — each release a version there, its stage and aliases the registry's own.

The protocol and the shared settings are in :mod:`.base`; one module per provider, each importing its client library
only when a release is mirrored. :class:`~flightdeck.governance.releases.Releases` calls them (``mirrors=``).
"""

from __future__ import annotations

from flightdeck.governance.registries.base import (
    STAGE_ALIASES,
    ModelRegistry,
    RegistryConfig,
    RegistryError,
    ReleaseFacts,
)

__all__ = ["ModelRegistry", "RegistryConfig", "RegistryError", "ReleaseFacts", "STAGE_ALIASES"]
