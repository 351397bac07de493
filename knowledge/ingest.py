"""Ingestion: files → documents → chunks → embeddings → Qdrant, incremental by content hash.

A source is named by the ingested folder's name plus its path inside it
("docs/halcyon-router-x1000/error-codes.md"), so ingesting the same folder again from anywhere
finds the same sources: unchanged ones are skipped, changed ones replaced, none duplicated.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from knowledge.chunking import Chunker
from knowledge.documents import UnreadableSource, find_sources, read_source
from knowledge.index import KnowledgeIndex


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
    progress: Callable[[Iterable[Path]], Iterable[Path]] = lambda paths: paths,
) -> IngestReport:
    """Index every source under root; with prune, drop indexed sources that no longer exist."""
    if not root.exists():
        raise FileNotFoundError(f"{root} does not exist")
    chunker = chunker or Chunker()
    index.ensure_collection()
    report = IngestReport()
    seen: set[str] = set()
    for path in progress(list(find_sources(root))):
        source = source_name(root, path)
        seen.add(source)
        _ingest_one(index, chunker, path, source, product, report)
    if prune and root.is_dir():
        prefix = f"{root.resolve().name}/"
        for stale in sorted(s for s in index.sources() if s.startswith(prefix) and s not in seen):
            index.delete_source(stale)
            report.removed.append(stale)
    return report


def _ingest_one(
    index: KnowledgeIndex,
    chunker: Chunker,
    path: Path,
    source: str,
    product: str | None,
    report: IngestReport,
) -> None:
    try:
        doc = read_source(path, source, product)
    except (UnreadableSource, OSError) as exc:
        report.failed.append((source, str(exc)))
        return
    previous = index.source_hash(source)
    if previous == doc.content_hash:
        report.unchanged.append(source)
        return
    chunks = chunker.split(doc)
    if not chunks:
        report.failed.append((source, "no text to index"))
        return
    index.replace_source(source, chunks)
    report.chunks += len(chunks)
    (report.updated if previous else report.added).append(source)
