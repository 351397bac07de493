"""Ingestion: files → documents → chunks → embeddings → Qdrant, incremental by content hash.

A source is named by the ingested folder's name plus its path inside it
("docs/halcyon-router-x1000/error-codes.md"; a docs.jsonl record adds "#" and its id), so
ingesting the same folder again from anywhere finds the same sources: unchanged ones are skipped,
changed ones replaced, none duplicated. Sources are embedded in batches; each source's chunks go
into Qdrant in one upsert, and its old chunks are deleted only after that.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from knowledge.chunking import Chunk, Chunker
from knowledge.documents import (
    MAX_SOURCE_BYTES,
    SourceDocument,
    UnreadableSource,
    find_sources,
    read_sources,
)
from knowledge.index import KnowledgeIndex, PointId, SourceState

Progress = Callable[[Sequence[SourceDocument]], Iterable[SourceDocument]]


@dataclass
class IngestReport:
    """What one ingest run did, source by source."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    chunks: int = 0

    def summary(self) -> str:
        return (
            f"{len(self.added)} added, {len(self.updated)} updated, "
            f"{len(self.unchanged)} unchanged, {len(self.removed)} removed, "
            f"{len(self.failed)} failed ({self.chunks} chunks written)"
        )


def source_name(root: Path, path: Path) -> str:
    if root.is_file():
        return path.name
    return f"{root.resolve().name}/{path.relative_to(root).as_posix()}"


def ingest(
    index: KnowledgeIndex,
    root: Path,
    *,
    product: str | None = None,
    prune: bool = False,
    chunker: Chunker | None = None,
    progress: Progress = lambda docs: docs,
    max_bytes: int = MAX_SOURCE_BYTES,
    batch_chunks: int = 256,
) -> IngestReport:
    """Index every document under root; with prune, drop indexed sources that no longer exist."""
    if not root.exists():
        raise FileNotFoundError(f"{root} does not exist")
    chunker = chunker or Chunker()
    index.ensure_collection()
    states = index.source_states()
    report = IngestReport()
    documents = read_documents(root, product, max_bytes, report)
    writer = BatchWriter(index, states, report, batch_chunks)
    for doc in progress(documents):
        writer.add(doc, chunker.split(doc))
    writer.flush()
    if prune and root.is_dir():
        seen = {d.source for d in documents}
        unreadable = {source for source, _ in report.failed}
        _prune(index, f"{root.resolve().name}/", states, seen, unreadable, report)
    return report


def read_documents(
    root: Path, product: str | None, max_bytes: int, report: IngestReport
) -> list[SourceDocument]:
    """Every readable document under root; unreadable files and records go to the report."""
    documents: list[SourceDocument] = []
    for path in find_sources(root):
        source = source_name(root, path)
        try:
            parsed = read_sources(path, source, product, max_bytes)
        except (UnreadableSource, OSError) as exc:
            report.failed.append((source, str(exc)))
            continue
        documents += parsed.documents
        report.failed += parsed.problems
    return documents


class BatchWriter:
    """Collects changed sources and writes them a batch at a time (embedding is the cost)."""

    def __init__(
        self,
        index: KnowledgeIndex,
        states: dict[str, SourceState],
        report: IngestReport,
        batch_chunks: int,
    ) -> None:
        self.index, self.states, self.report = index, states, report
        self.batch_chunks = batch_chunks
        self.pending: dict[str, list[Chunk]] = {}

    def add(self, doc: SourceDocument, chunks: list[Chunk]) -> None:
        state = self.states.get(doc.source)
        if state and state.content_hash == doc.content_hash:
            self.report.unchanged.append(doc.source)
            return
        if not chunks:
            self.report.failed.append((doc.source, "no text to index"))
            return
        self.pending[doc.source] = chunks
        if sum(len(c) for c in self.pending.values()) >= self.batch_chunks:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        stale: list[PointId] = []
        for source in self.pending:
            stale += self.states[source].point_ids if source in self.states else []
        self.index.write(self.pending, stale)
        for source, chunks in self.pending.items():
            (self.report.updated if source in self.states else self.report.added).append(source)
            self.report.chunks += len(chunks)
        self.pending = {}


def _prune(
    index: KnowledgeIndex,
    prefix: str,
    states: dict[str, SourceState],
    seen: set[str],
    unreadable: set[str],
    report: IngestReport,
) -> None:
    """Delete sources under prefix that were not found; those of unreadable files are kept."""
    for source in sorted(states):
        if not source.startswith(prefix) or source in seen:
            continue
        if source in unreadable or source.split("#")[0] in unreadable:
            continue
        index.delete_points(states[source].point_ids)
        report.removed.append(source)
