"""``${ENV_VAR}`` references in provider settings, resolved at use time and never written back."""

from __future__ import annotations

import os
import re
from typing import Any

from flightdeck.errors import SpecError, SpecProblem

__all__ = ["resolve_env", "ENV_REF"]

ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def resolve_env(value: Any, where: str = "spec") -> Any:
    """A copy of ``value`` with every ``${NAME}`` replaced by the environment variable NAME."""
    if isinstance(value, dict):
        return {k: resolve_env(v, where) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_env(v, where) for v in value]
    if isinstance(value, str):
        missing = [m for m in ENV_REF.findall(value) if m not in os.environ]
        if missing:
            raise SpecError([SpecProblem(where, "", f"environment variable {missing[0]} is not set "
                                                    f"(referenced as ${{{missing[0]}}})")])
        return ENV_REF.sub(lambda m: os.environ[m.group(1)], value)
    return value
