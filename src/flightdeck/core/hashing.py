"""Content hashes that do not depend on dict order or process: the keys of caches, steps and versions."""

from __future__ import annotations

import hashlib
import json
from typing import Any

__all__ = ["stable_hash"]


def stable_hash(obj: Any) -> str:
    """SHA-256 of the canonical JSON of ``obj``."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()
