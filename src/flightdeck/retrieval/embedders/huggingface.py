"""Any Hugging Face encoder from a local folder, with transformers' AutoTokenizer/AutoModel and own pooling.

For models that ship no sentence-transformers configuration (or when the team wants to choose pooling,
truncation and dtype itself). Nothing is downloaded: the folder must hold ``config.json``, the weights and
the tokenizer; ``local_files_only`` is always on.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from flightdeck.errors import FlightdeckError
from flightdeck.registry.lookup import optional_import
from flightdeck.retrieval.embedders.sentence_transformers import cpu_threads, packaged_model_dir

__all__ = ["HuggingFaceConfig", "HuggingFaceEmbedder"]

Pooling = Literal["mean", "cls", "last_token"]

# Many tokenizer_config.json files say model_max_length = 1e30 when they mean "no limit of my own".
_NO_LIMIT = 1_000_000
_WEIGHT_FILES = ("*.safetensors", "pytorch_model*.bin")
_TAIL_BYTES = 1 << 20


def _instruction_prefix(instruction: str) -> str:
    # the query format of instruction-tuned embedders (E5-instruct, GTE-Qwen, Qwen3-Embedding)
    return f"Instruct: {instruction}\nQuery: "


class HuggingFaceConfig(BaseModel):
    """Settings of ``embedding_model: {provider: huggingface, ...}``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    # settings that name local paths, resolved against the spec's folder by Project
    path_settings: ClassVar[tuple[str, ...]] = ("model",)

    model: str | None = Field(None, description="local model folder (config.json, weights, tokenizer); "
                                                "default: the packaged all-MiniLM-L6-v2")
    pooling: Pooling | None = Field(None, description="mean, cls or last_token; default: the model's "
                                                      "1_Pooling/config.json when it has one, else mean")
    normalize: bool = Field(True, description="scale vectors to unit length (inner product = cosine)")
    query_prefix: str = Field("", description="prepended to every query, e.g. 'query: ' for E5 models")
    document_prefix: str = Field("", description="prepended to every document, e.g. 'passage: ' for E5")
    instruction: str | None = Field(None, description="task instruction for instruction-tuned models; queries "
                                                      "become 'Instruct: <instruction>\\nQuery: <text>'")
    batch_size: int = Field(32, ge=1, le=4096)
    max_length: int | None = Field(None, ge=1, description="tokens per text, longer texts are truncated; "
                                   "default: the model's sentence_bert_config.json max_seq_length, else "
                                   "config.json max_position_embeddings capped by the tokenizer's limit")
    device: str | None = Field(None, description="cpu, cuda, cuda:1, mps; default: cuda when present")
    dtype: Literal["float32", "float16", "bfloat16"] = Field(
        "float32", description="weights' dtype; float16/bfloat16 halve memory on a GPU and change vectors slightly")

    @field_validator("model")
    @classmethod
    def _local_only(cls, value: str | None) -> str | None:
        # relative paths are checked when the embedder is built (Project resolves them against the spec)
        if value is not None:
            path = Path(value).expanduser()
            if path.is_absolute() and not path.is_dir():
                raise ValueError(_missing_folder(path))
        return value

    @model_validator(mode="after")
    def _one_query_format(self) -> HuggingFaceConfig:
        if self.instruction is not None and self.query_prefix:
            raise ValueError("set either instruction or query_prefix, not both: the instruction is the query "
                             "prefix 'Instruct: <instruction>\\nQuery: '")
        return self

    @property
    def effective_query_prefix(self) -> str:
        """What is put before every query text."""
        return _instruction_prefix(self.instruction) if self.instruction is not None else self.query_prefix


def _missing_folder(path: Path) -> str:
    return (f"model folder {str(path)!r} does not exist; flightdeck loads Hugging Face models from local folders "
            "only (nothing is downloaded at run time): download it once, e.g. `hf download <repo> --local-dir "
            f"{path}`, and point `model:` at that folder")


def _default_dir() -> Path:
    return packaged_model_dir("huggingface", "embedder 'huggingface' without a `model:` folder (it uses the "
                              "packaged all-MiniLM-L6-v2)")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


class HuggingFaceEmbedder:
    """Embeds with ``transformers.AutoModel`` and mean/CLS/last-token pooling; loads it on first use."""

    def __init__(self, config: HuggingFaceConfig | None = None) -> None:
        self.config = config or HuggingFaceConfig()
        self._dir = Path(self.config.model).expanduser().resolve() if self.config.model else _default_dir()
        if not self._dir.is_dir():
            raise FlightdeckError(_missing_folder(self._dir))
        if not (self._dir / "config.json").is_file():
            raise FlightdeckError(f"{self._dir}: no config.json here, so this is not a transformers model folder;"
                                  " point `model:` at the folder that holds config.json, the weights and the"
                                  " tokenizer")
        self._model: Any = None
        self._tokenizer: Any = None
        self._model_cfg = _read_json(self._dir / "config.json")
        self._pooling: str = self.config.pooling or self._pooling_from_folder()
        self._max_length = self._resolve_max_length()
        self._fingerprint = self._read_fingerprint()

    # what the folder says, read without importing transformers ----------------------------------
    def _pooling_from_folder(self) -> str:
        cfg = _read_json(self._dir / "1_Pooling" / "config.json")
        if cfg.get("pooling_mode_cls_token"):
            return "cls"
        if cfg.get("pooling_mode_lasttoken"):
            return "last_token"
        return "mean"

    def _model_limit(self) -> int | None:
        limits = [int(v) for k in ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length")
                  if isinstance(v := self._model_cfg.get(k), int) and v > 0][:1]
        tok_limit = _read_json(self._dir / "tokenizer_config.json").get("model_max_length")
        if isinstance(tok_limit, int | float) and 0 < tok_limit < _NO_LIMIT:
            limits.append(int(tok_limit))
        return min(limits) if limits else None

    def _resolve_max_length(self) -> int:
        limit = self._model_limit()
        wanted = self.config.max_length
        if wanted is not None:
            if limit is not None and wanted > limit:
                raise FlightdeckError(f"max_length {wanted} exceeds the {limit} tokens that the model in {self._dir} "
                                      f"can read (config.json/tokenizer_config.json); set max_length <= {limit}")
            return wanted
        trained = _read_json(self._dir / "sentence_bert_config.json").get("max_seq_length")
        if isinstance(trained, int) and trained > 0:
            return min(trained, limit) if limit else trained
        if limit is None:
            raise FlightdeckError(f"{self._dir}/config.json states no maximum sequence length "
                                  "(max_position_embeddings); set max_length in the embedder's settings")
        return limit

    def _read_fingerprint(self) -> str:
        # config.json alone is the same for a model and its fine-tunes: add each weight file's size and
        # last megabyte (tensor data), which differ, without reading gigabytes
        digest = hashlib.sha256((self._dir / "config.json").read_bytes())
        for pattern in _WEIGHT_FILES:
            for file in sorted(self._dir.glob(pattern)):
                size = file.stat().st_size
                digest.update(f"{file.name}:{size}".encode())
                with file.open("rb") as fh:
                    fh.seek(max(size - _TAIL_BYTES, 0))
                    digest.update(fh.read())
        return digest.hexdigest()[:12]

    @property
    def model_name(self) -> str:
        folder = self._dir
        # the packaged model sits in a folder called "model": name it after the model instead
        return "all-MiniLM-L6-v2" if folder.name == "model" and "minilm" in str(folder).lower() else folder.name

    # the Embedder protocol -----------------------------------------------------------------------
    @property
    def model_dir(self) -> str:
        return str(self._dir)

    @property
    def model_id(self) -> str:
        c = self.config
        settings = json.dumps([self._pooling, c.normalize, c.document_prefix, c.effective_query_prefix,
                               self._max_length, c.dtype])
        extras = hashlib.sha256(settings.encode()).hexdigest()[:8]
        return f"huggingface:{self.model_name}@{self._fingerprint}/{self._pooling}/{extras}"

    @property
    def pooling(self) -> str:
        return self._pooling

    @property
    def max_tokens(self) -> int:
        return self._max_length

    @property
    def dimension(self) -> int:
        for key in ("hidden_size", "d_model", "n_embd", "dim"):
            if isinstance(self._model_cfg.get(key), int):
                return int(self._model_cfg[key])
        return int(self.embed_query("dimension").shape[0])

    @property
    def device(self) -> str:
        if self.config.device:
            return self.config.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    def warm_up(self) -> Any:
        """Load the tokenizer and the model (once)."""
        if self._model is None:
            torch = optional_import("torch", "huggingface", "embedder 'huggingface'")
            transformers = optional_import("transformers", "huggingface", "embedder 'huggingface'")
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # keep stderr for flightdeck's own progress and errors
            try:
                tokenizer = transformers.AutoTokenizer.from_pretrained(str(self._dir), local_files_only=True)
                model = transformers.AutoModel.from_pretrained(str(self._dir), local_files_only=True,
                                                               dtype=getattr(torch, self.config.dtype))
            except (OSError, ValueError) as exc:
                raise FlightdeckError(f"could not load the Hugging Face model in {self._dir}: {exc}; the folder "
                                      "needs config.json, the weights (model.safetensors or pytorch_model.bin) "
                                      "and the tokenizer files") from exc
            if tokenizer.pad_token is None:  # decoder models (last_token pooling) often have none
                if tokenizer.eos_token is None:
                    raise FlightdeckError(f"the tokenizer in {self._dir} has neither a pad nor an eos token, so "
                                          "texts cannot be batched; set batch_size: 1")
                tokenizer.pad_token = tokenizer.eos_token
            self._tokenizer = tokenizer
            self._model = model.to(self.device).eval()
        return self._model

    def _encode(self, texts: list[str]) -> np.ndarray:
        import torch

        model = self.warm_up()
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        # longest first, so that each batch pads to similar lengths; results go back in input order
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out: list[np.ndarray] = [np.empty(0, dtype=np.float32)] * len(texts)
        device = model.device
        for start in range(0, len(order), self.config.batch_size):
            idx = order[start:start + self.config.batch_size]
            batch = self._tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                                    max_length=self._max_length, return_tensors="pt")
            batch = {k: v.to(device) for k, v in batch.items()}
            with torch.inference_mode():
                output = model(**batch)
            hidden = getattr(output, "last_hidden_state", None)
            if hidden is None:
                raise FlightdeckError(f"the model in {self._dir} ({type(model).__name__}) returns no "
                                      "last_hidden_state; use an encoder or decoder model, not a seq2seq one")
            vectors = self._pool(hidden.float(), batch["attention_mask"])
            if self.config.normalize:
                vectors = torch.nn.functional.normalize(vectors, p=2, dim=1)
            for i, vec in zip(idx, vectors.cpu().numpy(), strict=True):
                out[i] = vec
        return np.ascontiguousarray(np.stack(out), dtype=np.float32)

    def _pool(self, hidden: Any, mask: Any) -> Any:
        import torch

        if self._pooling == "cls":
            return hidden[:, 0]
        if self._pooling == "last_token":
            if bool(mask[:, -1].all()):  # left padding (or none): the last position is every text's last token
                return hidden[:, -1]
            last = mask.sum(dim=1) - 1
            return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        prefix = self.config.document_prefix
        return self._encode([prefix + t for t in texts] if prefix else list(texts))

    def embed_query(self, text: str) -> np.ndarray:
        with cpu_threads(1):  # one short text: one thread is fastest and never oversubscribes the cores
            return self._encode([self.config.effective_query_prefix + text])[0]
