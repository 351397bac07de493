"""Typical RAG prompts for benchmarks: the real prompt layer over the sample knowledge base."""

from __future__ import annotations

import json
from pathlib import Path

from knowledge.catalog import load_products, load_system_prompt, load_templates
from knowledge.embedding import Embedder
from knowledge.index import KnowledgeIndex, open_client
from knowledge.ingest import ingest
from service.config import SAMPLE_KNOWLEDGE_DIR
from service.engines.base import ChatMessage
from service.prompting.builder import PromptBuilder
from service.prompting.selection import TemplateSelector


def sample_questions(kind: str = "in_scope") -> list[dict[str, str]]:
    path = SAMPLE_KNOWLEDGE_DIR / "eval" / "questions.jsonl"
    return [q for q in map(json.loads, path.read_text().splitlines()) if q["type"] == kind]


def rag_prompts(workdir: Path, count: int, chunks: int = 3) -> list[list[ChatMessage]]:
    """System rules + troubleshooting template + `chunks` retrieved chunks + question."""
    client = open_client(workdir / "qdrant")
    embedder = Embedder()
    index = KnowledgeIndex(client, "bench", embedder)
    ingest(index, SAMPLE_KNOWLEDGE_DIR / "docs")
    catalog = load_products(SAMPLE_KNOWLEDGE_DIR)
    selector = TemplateSelector(load_templates(SAMPLE_KNOWLEDGE_DIR, catalog), embedder)
    builder = PromptBuilder(load_system_prompt(SAMPLE_KNOWLEDGE_DIR))
    prompts = []
    for q in sample_questions()[:count]:
        hits = index.search(q["question"], q["product"], chunks)
        template = selector.select(q["question"], q["product"])
        prompts.append(builder.build(q["question"], hits, template).messages)
    client.close()
    return prompts
