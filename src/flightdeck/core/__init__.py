"""The ground floor: what every layer may import and which imports nothing of flightdeck's but ``errors``.

Hashing, the Reporter protocol, the step and hook contracts, the chunk-size rule, the retry policy, and the package
version. The layers above (workspace, registry, spec; the providers of data/, retrieval/, models/...; the pipeline;
the Project facade; the CLI) import down only.
"""

from flightdeck.core.chunking import (
    DEFAULT_CHUNK_SIZE,
    SPECIAL_TOKENS,
    chunk_size_error,
    chunk_token_window,
    fit_chunk_size,
)
from flightdeck.core.hashing import stable_hash
from flightdeck.core.reporting import NullReporter, Reporter
from flightdeck.core.retry import RetryPolicy
from flightdeck.core.steps import RunHook, Step, StepRecord, StepResult

__version__ = "0.1.0"

__all__ = ["stable_hash", "Reporter", "NullReporter", "Step", "StepResult", "StepRecord", "RunHook", "__version__",
           "SPECIAL_TOKENS", "DEFAULT_CHUNK_SIZE", "chunk_token_window", "fit_chunk_size", "chunk_size_error",
           "RetryPolicy"]
