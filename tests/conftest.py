"""Shared fixtures: real parts everywhere (SQLite, Qdrant local mode, MiniLM, a tiny Gemma)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from knowledge.embedding import Embedder
from knowledge.index import open_index
from knowledge.ingest import ingest
from service.app import Overrides, create_app
from service.config import SAMPLE_KNOWLEDGE_DIR, Settings
from service.engines.artifacts import prepare_tokenizer
from tests.tiny_model import build_tiny_adapter, build_tiny_gemma

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA; no GPU on this machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """The real packaged MiniLM, loaded once for the whole run."""
    return Embedder()


@pytest.fixture(scope="session")
def gemma_tokenizer_dir() -> Path:
    """The real Gemma 3 tokenizer, read from the packaged GGUF once and cached."""
    return prepare_tokenizer(Settings().model.cache_dir / "gemma-3-tokenizer", report=print)


@pytest.fixture(scope="session")
def tiny_model_dir(gemma_tokenizer_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_gemma(gemma_tokenizer_dir, tmp_path_factory.mktemp("tiny") / "tiny-gemma")


@pytest.fixture(scope="session")
def tiny_adapters(
    tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """Two LoRA adapters for the tiny model: name → folder."""
    root = tmp_path_factory.mktemp("adapters")
    return {
        name: build_tiny_adapter(tiny_model_dir, root / name, seed)
        for name, seed in [("alpha", 1), ("beta", 2)]
    }


@pytest.fixture(scope="session")
def sample_index_dir(embedder: Embedder, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample knowledge base ingested once, in the service's default store."""
    path = tmp_path_factory.mktemp("qdrant-sample")
    index = open_index("tunedesk", embedder, store=Settings().knowledge.store, path=path)
    try:
        ingest(index, SAMPLE_KNOWLEDGE_DIR / "docs")
    finally:
        index.close()
    return path


def make_settings(tmp_path: Path, model_dir: Path, qdrant_dir: Path, **extra: Any) -> Settings:
    return Settings(
        data_dir=tmp_path,
        model={"path": model_dir},  # type: ignore[arg-type]
        knowledge={"qdrant_path": qdrant_dir},  # type: ignore[arg-type]
        engine={"max_new_tokens": 12},  # type: ignore[arg-type]
        **extra,
    )


@pytest.fixture
def settings(tmp_path: Path, tiny_model_dir: Path, sample_index_dir: Path) -> Settings:
    qdrant = tmp_path / "qdrant"
    shutil.copytree(sample_index_dir, qdrant)  # local mode locks its folder: one copy per app
    return make_settings(tmp_path, tiny_model_dir, qdrant)


@pytest.fixture
def client(settings: Settings, embedder: Embedder) -> Iterator[TestClient]:
    app = create_app(settings, Overrides(embedder=embedder))
    with TestClient(app) as test_client:
        yield test_client
