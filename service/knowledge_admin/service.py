"""A tenant's documents: upload, re-index, delete, list, with what ingestion made of each.

Uploaded files are kept under `<data_dir>/knowledge/<tenant>/uploads/<product>/<file>` and
indexed as sources named `uploads/<product>/<file>`, so a re-index (which prunes) only ever
touches uploaded sources, never what `tunedesk ingest` indexed from elsewhere.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from knowledge.chunking import Chunker
from knowledge.documents import MAX_SOURCE_BYTES, SUFFIXES, SourceDocument
from knowledge.index import KnowledgeIndex
from knowledge.ingest import BatchWriter, IngestReport, read_documents
from service.errors import InvalidRequest, NotFound

UPLOADS = "uploads"
NO_PRODUCT = "_all"
SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
UNSUPPORTED = (
    "not a supported document type, so it was not stored; name it with one of "
    + ", ".join(SUFFIXES)
)


class SourceNotFound(NotFound):
    code = "source_not_found"


@dataclass(frozen=True)
class Upload:
    filename: str
    content: bytes


@dataclass(frozen=True)
class SourceStatus:
    source: str
    status: str  # indexed | failed
    chunks: int
    detail: str | None = None


class KnowledgeAdmin:
    def __init__(self, data_dir: Path, max_bytes: int = MAX_SOURCE_BYTES) -> None:
        self._data_dir = data_dir
        self._max_bytes = max_bytes
        self._locks: dict[str, asyncio.Lock] = {}

    async def upload(
        self, tenant_id: str, index: KnowledgeIndex, product: str | None, files: list[Upload]
    ) -> IngestReport:
        """Store the files and index them; each bad file is reported, the rest go in.
        A file of a type ingestion does not read is reported too, and never written."""
        folder = self._uploads(tenant_id) / (product or NO_PRODUCT)
        async with self._lock(tenant_id):
            refused = await asyncio.to_thread(_write_files, folder, files, self._max_bytes)
            report = await asyncio.to_thread(self._ingest, tenant_id, index, False)
        sources = [(f"{UPLOADS}/{folder.name}/{name}", why) for name, why in refused]
        report.failed = sources + report.failed
        return report

    async def reindex(self, tenant_id: str, index: KnowledgeIndex) -> IngestReport:
        """Index every uploaded file again: changed ones replaced, removed ones pruned."""
        async with self._lock(tenant_id):
            return await asyncio.to_thread(self._ingest, tenant_id, index, True)

    async def delete(self, tenant_id: str, index: KnowledgeIndex, source: str) -> None:
        path = self._path_of(tenant_id, source)
        async with self._lock(tenant_id):
            indexed = source in await asyncio.to_thread(index.sources)
            if not indexed and not path.is_file():
                raise SourceNotFound(f"No source {source!r}: see GET /v1/knowledge/sources.")
            await asyncio.to_thread(index.delete_source, source)
            path.unlink(missing_ok=True)
            await asyncio.to_thread(self._forget_failure, tenant_id, source)

    def sources(self, tenant_id: str, index: KnowledgeIndex) -> list[SourceStatus]:
        """Every indexed source with its chunk count, then uploads that failed, with why."""
        indexed = [
            SourceStatus(source, "indexed", len(state.point_ids))
            for source, state in sorted(index.source_states().items())
        ]
        failed = [
            SourceStatus(source, "failed", 0, reason)
            for source, reason in sorted(self._failures(tenant_id).items())
        ]
        return indexed + failed

    def _ingest(self, tenant_id: str, index: KnowledgeIndex, prune: bool) -> IngestReport:
        root = self._uploads(tenant_id)
        root.mkdir(parents=True, exist_ok=True)
        index.ensure_collection()
        report = IngestReport()
        documents = self._read(root, report)
        writer = BatchWriter(index, index.source_states(), report, batch_chunks=256)
        chunker = Chunker()
        for doc in documents:
            writer.add(doc, chunker.split(doc))
        writer.flush()
        if prune:
            _prune_missing(index, {d.source for d in documents}, report)
        self._record_failures(tenant_id, report)
        return report

    def _read(self, root: Path, report: IngestReport) -> list[SourceDocument]:
        """Each product folder's documents, named `uploads/<product>/<file>`."""
        documents: list[SourceDocument] = []
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            product = None if folder.name == NO_PRODUCT else folder.name
            part = IngestReport()
            for doc in read_documents(folder, product, self._max_bytes, part):
                documents.append(replace(doc, source=f"{UPLOADS}/{doc.source}"))
            report.failed += [(f"{UPLOADS}/{s}", why) for s, why in part.failed]
        return documents

    def _uploads(self, tenant_id: str) -> Path:
        return self._data_dir / "knowledge" / tenant_id / UPLOADS

    def _path_of(self, tenant_id: str, source: str) -> Path:
        relative = source.removeprefix(f"{UPLOADS}/")
        root = self._uploads(tenant_id).resolve()
        path = (root / relative).resolve()
        if not source.startswith(f"{UPLOADS}/") or root not in path.parents:
            return root / ".not-an-upload"  # never a file: only uploads can be deleted from disk
        return path

    def _lock(self, tenant_id: str) -> asyncio.Lock:
        return self._locks.setdefault(tenant_id, asyncio.Lock())

    def _status_file(self, tenant_id: str) -> Path:
        return self._data_dir / "knowledge" / tenant_id / "failed.json"

    def _failures(self, tenant_id: str) -> dict[str, str]:
        path = self._status_file(tenant_id)
        return dict(json.loads(path.read_text())) if path.is_file() else {}

    def _record_failures(self, tenant_id: str, report: IngestReport) -> None:
        failures = self._failures(tenant_id)
        for source in report.added + report.updated + report.unchanged + report.removed:
            failures.pop(source, None)
        failures.update(dict(report.failed))
        self._status_file(tenant_id).write_text(json.dumps(failures, indent=1))

    def _forget_failure(self, tenant_id: str, source: str) -> None:
        failures = self._failures(tenant_id)
        if failures.pop(source, None) is not None:
            self._status_file(tenant_id).write_text(json.dumps(failures, indent=1))


def _write_files(folder: Path, files: list[Upload], max_bytes: int) -> list[tuple[str, str]]:
    """Write the files ingestion reads; (name as sent, why) for those of other types."""
    if not files:
        raise InvalidRequest("Send at least one file in the `files` form field.")
    folder.mkdir(parents=True, exist_ok=True)
    refused = []
    for upload in files:
        name = SAFE_NAME.sub("-", Path(upload.filename).name).strip(".-")
        if not name:
            raise InvalidRequest(f"{upload.filename!r} is not a usable file name.")
        if len(upload.content) > max_bytes:
            raise InvalidRequest(
                f"{upload.filename} is {len(upload.content)} bytes; the limit is {max_bytes}."
            )
        if Path(name).suffix.lower() not in SUFFIXES:
            refused.append((Path(upload.filename).name, UNSUPPORTED))
            continue
        (folder / name).write_bytes(upload.content)
    return refused


def _prune_missing(index: KnowledgeIndex, present: set[str], report: IngestReport) -> None:
    for source in sorted(index.sources()):
        if source.startswith(f"{UPLOADS}/") and source not in present:
            index.delete_source(source)
            report.removed.append(source)


def report_dict(report: IngestReport) -> dict[str, object]:
    body = asdict(report)
    body["failed"] = [{"source": s, "reason": why} for s, why in report.failed]
    return body
