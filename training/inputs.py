"""What a dataset build reads: transcripts (database or JSONL) and the knowledge behind prompts."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from knowledge.catalog import SystemPrompt, load_products, load_system_prompt, load_templates
from service.config import Settings
from service.prompting.builder import PromptBudget, PromptBuilder, token_counter
from training.chunks import ChunkLookup, DocsChunks, IndexChunks
from training.prompts import PromptRebuilder
from training.transcripts import read_transcripts


def transcripts_from(path: Path | None, settings: Settings) -> tuple[Any, dict[str, Any]]:
    """Transcripts from a JSONL file, or from the service's database; and where they came from."""
    if path is not None:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        return read_transcripts(path), {"kind": "jsonl", "path": str(path), "sha256": digest}
    from training.store_export import transcripts_from_database

    url = settings.db_url
    safe = make_url(url).render_as_string(hide_password=True)
    return transcripts_from_database(url), {"kind": "database", "url": safe}


@contextmanager
def chunk_lookup(docs: Path | None, settings: Settings) -> Iterator[tuple[ChunkLookup, str]]:
    """Chunks from a documents folder chunked in memory, or from the live knowledge base."""
    if docs is not None:
        yield DocsChunks(docs), f"docs:{docs}"
        return
    from knowledge.embedding import Embedder
    from knowledge.index import open_index

    knowledge = settings.knowledge
    index = open_index(
        knowledge.collection,
        Embedder(),  # never loaded: chunks are read back, not searched
        store=knowledge.store,
        path=knowledge.qdrant_path,
        url=knowledge.qdrant_url,
    )
    try:
        where = knowledge.qdrant_url or f"{knowledge.store}:{knowledge.qdrant_path}"
        yield IndexChunks(index), f"qdrant:{where}#{knowledge.collection}"
    finally:
        index.close()


def prompt_rebuilder(
    catalog_dir: Path, chunks: ChunkLookup, settings: Settings
) -> tuple[PromptRebuilder, dict[str, Any]]:
    """The rebuilder the service's prompt settings imply, and what it was built from."""
    system = load_system_prompt(catalog_dir)
    templates = load_templates(catalog_dir, load_products(catalog_dir))
    rebuilder = PromptRebuilder(
        service_prompt_builder(system, settings),
        templates,
        chunks,
        history_messages=settings.chat.history_messages,
    )
    described = {
        "catalog_dir": str(catalog_dir),
        "system_prompt": {"id": system.id, "version": system.version},
        "templates": {t.id: t.version for t in templates},
        "history_messages": settings.chat.history_messages,
        "max_prompt_tokens": settings.chat.max_prompt_tokens,
        "history_tokens": settings.chat.history_tokens,
        "source_chars": settings.chat.source_chars,
    }
    return rebuilder, described


def service_prompt_builder(system: SystemPrompt, settings: Settings) -> PromptBuilder:
    """The PromptBuilder as the service builds it (service/app.py): same budget and tokenizer."""
    budget = PromptBudget(settings.chat.max_prompt_tokens, settings.chat.history_tokens)
    count = token_counter(settings.model.directory)
    return PromptBuilder(
        system, count_tokens=count, budget=budget, max_chunk_chars=settings.chat.source_chars
    )
