"""Ingestion and retrieval with the real embedder, in both embedded vector stores (Qdrant Edge
and Qdrant local mode), and the query-vector cache."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from knowledge.embedding import Embedder, VectorCache
from knowledge.index import EMBEDDED_STORES, KnowledgeBaseBusy, KnowledgeIndex, open_index
from knowledge.ingest import ingest
from tests.conftest import copy_index

ROUTER = "halcyon-router-x1000"
PAGE = """---
product: {product}
title: {title}
---
# {title}

## Overview
{body}
"""


@pytest.fixture(params=sorted(EMBEDDED_STORES))
def index(
    tmp_path: Path, embedder: Embedder, request: pytest.FixtureRequest
) -> Iterator[KnowledgeIndex]:
    index = open_index("test", embedder, store=request.param, path=tmp_path / "kb")
    yield index
    index.close()


@pytest.fixture
def sample_index(
    sample_index_dir: Path, embedder: Embedder, tmp_path: Path
) -> Iterator[KnowledgeIndex]:

    copy_index(sample_index_dir, tmp_path / "sample")
    index = open_index("tunedesk", embedder, path=tmp_path / "sample")  # the default store
    yield index
    index.close()


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


@pytest.mark.parametrize("store", sorted(EMBEDDED_STORES))
def test_an_index_reopens_with_its_chunks_and_one_process_holds_it(
    store: str, tmp_path: Path, embedder: Embedder
) -> None:
    docs = tmp_path / "docs"
    write(docs, "a.md", "Setup", "Plug the router in and wait for the white LED.")
    index = open_index("kb", embedder, store=store, path=tmp_path / "kb")
    ingest(index, docs)
    count = index.count()
    with pytest.raises(KnowledgeBaseBusy):
        open_index("kb", embedder, store=store, path=tmp_path / "kb")
    index.close()
    reopened = open_index("kb", embedder, store=store, path=tmp_path / "kb")
    try:
        assert reopened.count() == count > 0
        assert ingest(reopened, docs).unchanged == ["docs/a.md"]
        assert "white LED" in reopened.search("which LED colour", limit=1)[0].text
    finally:
        reopened.close()


def test_a_repeated_question_is_embedded_once(embedder: Embedder) -> None:
    question = "my router shows error E5 after the firmware update, what now?"
    first = embedder.embed([question])[0]
    assert embedder.cache.get(question) == first
    again, _ = embedder.embed([question, "a different question about the camera"])
    assert again == first and embedder.cache.get("a different question about the camera")
    assert len(embedder.embed([f"page {n}" for n in range(40)])) == 40
    assert embedder.cache.get("page 0") is None  # ingestion batches bypass the cache
    fresh = Embedder(cache_size=0).embed([question])[0]
    assert max(abs(a - b) for a, b in zip(first, fresh, strict=True)) < 1e-5


def test_the_vector_cache_forgets_the_least_recently_used() -> None:
    cache = VectorCache(2)
    cache.put("a", [1.0])
    cache.put("b", [2.0])
    assert cache.get("a") == [1.0]
    cache.put("c", [3.0])
    assert cache.get("b") is None and cache.get("a") == [1.0] and len(cache) == 2


def test_chunks_are_read_back_by_id_and_by_source(index: KnowledgeIndex, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    write(docs, "a.md", "Setup", "Plug the router in.\n\n## Lights\nWait for the white LED.")
    write(docs, "b.md", "Reset", "Hold the pinhole for 10 seconds.")
    ingest(index, docs)
    setup = index.source_chunks("docs/a.md")
    assert [h.heading for h in setup] == ["Setup > Overview", "Setup > Lights"]
    by_id = index.chunks([setup[1].chunk_id, "00000000-0000-0000-0000-000000000000"])
    assert list(by_id) == [setup[1].chunk_id] and "white LED" in by_id[setup[1].chunk_id].text
    write(docs, "a.md", "Setup", "Plug the router in.")
    ingest(index, docs)
    assert index.chunks([setup[1].chunk_id]) == {}  # replaced chunks are gone
    assert index.source_chunks("docs/missing.md") == []


def test_first_searches_racing_from_many_threads_open_the_store_once(
    sample_index_dir: Path, embedder: Embedder, tmp_path: Path
) -> None:
    """The service searches in worker threads: two first questions at once used to both open
    the Qdrant Edge shard, and the second failed on its WAL lock ("WouldBlock", a 500)."""
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    for attempt in range(3):
        copy_index(sample_index_dir, tmp_path / str(attempt))
        index = open_index("tunedesk", embedder, path=tmp_path / str(attempt))
        start = Barrier(8)

        def first_search(_: int, index: KnowledgeIndex = index, start: Barrier = start) -> str:
            start.wait()
            return index.search("what does E5 mean on my router", limit=1)[0].source

        try:
            with ThreadPoolExecutor(8) as pool:
                found = list(pool.map(first_search, range(8)))
        finally:
            index.close()
        assert set(found) == {"docs/halcyon-router-x1000/error-codes.md"}
