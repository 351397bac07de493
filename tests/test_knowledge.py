"""Ingestion and retrieval with the real embedder and Qdrant local mode."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from knowledge.embedding import Embedder
from knowledge.index import KnowledgeIndex, open_client
from knowledge.ingest import ingest

ROUTER = "halcyon-router-x1000"
PAGE = """---
product: {product}
title: {title}
---
# {title}

## Overview
{body}
"""


@pytest.fixture
def index(tmp_path: Path, embedder: Embedder) -> Iterator[KnowledgeIndex]:
    client = open_client(tmp_path / "qdrant")
    yield KnowledgeIndex(client, "test", embedder)
    client.close()


@pytest.fixture
def sample_index(
    sample_index_dir: Path, embedder: Embedder, tmp_path: Path
) -> Iterator[KnowledgeIndex]:
    import shutil

    shutil.copytree(sample_index_dir, tmp_path / "sample")
    client = open_client(tmp_path / "sample")
    yield KnowledgeIndex(client, "tunedesk", embedder)
    client.close()


def write(folder: Path, name: str, title: str, body: str, product: str = ROUTER) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(PAGE.format(product=product, title=title, body=body))
    return path


def test_reingest_skips_unchanged_and_replaces_changed(
    index: KnowledgeIndex, tmp_path: Path
) -> None:
    docs = tmp_path / "docs"
    write(docs, "a.md", "Setup", "Plug the router in and wait for the white LED.")
    write(docs, "b.md", "Reset", "Hold the pinhole for 10 seconds.")
    first = ingest(index, docs)
    assert sorted(first.added) == ["docs/a.md", "docs/b.md"]
    count = index.count()

    second = ingest(index, docs)
    assert sorted(second.unchanged) == ["docs/a.md", "docs/b.md"]
    assert index.count() == count  # nothing duplicated

    write(docs, "b.md", "Reset", "Hold the pinhole for 15 seconds until the LED blinks amber.")
    third = ingest(index, docs)
    assert third.updated == ["docs/b.md"] and third.unchanged == ["docs/a.md"]
    texts = [h.text for h in index.search("how long to hold the pinhole", limit=5)]
    assert any("15 seconds" in t for t in texts)
    assert not any("10 seconds" in t for t in texts)  # the old chunk is gone


def test_prune_removes_deleted_sources(index: KnowledgeIndex, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    write(docs, "a.md", "Setup", "Plug the router in.")
    gone = write(docs, "b.md", "Reset", "Hold the pinhole.")
    ingest(index, docs)
    gone.unlink()
    assert ingest(index, docs).removed == []  # without --prune nothing is deleted
    assert ingest(index, docs, prune=True).removed == ["docs/b.md"]
    assert index.sources() == {"docs/a.md"}


def test_bad_files_are_reported_and_the_rest_ingested(
    index: KnowledgeIndex, tmp_path: Path
) -> None:
    docs = tmp_path / "docs"
    write(docs, "good.md", "Setup", "Plug the router in.")
    (docs / "empty.md").write_text("   \n")
    (docs / "binary.txt").write_bytes(b"\x00\x01\x02binary")
    (docs / "latin1.txt").write_bytes("caf\xe9 cr\xe8me".encode("latin-1"))
    report = ingest(index, docs)
    reasons = dict(report.failed)
    assert report.added == ["docs/good.md"]
    assert "empty" in reasons["docs/empty.md"]
    assert "binary" in reasons["docs/binary.txt"]
    assert "UTF-8" in reasons["docs/latin1.txt"]


def test_error_code_question_finds_the_error_code_page(sample_index: KnowledgeIndex) -> None:
    hits = sample_index.search("my router shows error E5, what do I do?", product=ROUTER, limit=3)
    assert hits[0].source == "docs/halcyon-router-x1000/error-codes.md"
    assert "E5" in hits[0].text


def test_product_filter_keeps_to_one_product(sample_index: KnowledgeIndex) -> None:
    hits = sample_index.search("how do I reset it", product="halcyon-camera-c3", limit=8)
    assert hits and {h.product for h in hits} == {"halcyon-camera-c3"}
