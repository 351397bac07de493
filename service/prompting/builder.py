"""Assemble one chat prompt with LangChain, stable parts first so engines can reuse the prefix.

Order: system rules → troubleshooting template → numbered sources → history → question. Each
part is its own system message: every leading system message but the last (the sources) is
stable across questions, which is where the CPU engine caches keys and values.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from langchain_core.messages import BaseMessage
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder

from knowledge.catalog import SystemPrompt, TroubleshootingTemplate
from knowledge.index import SearchHit
from service.engines.base import ChatMessage
from service.prompting.guardrails import defuse

PROMPT_TEMPLATE_ID = "support-rag"
PROMPT_TEMPLATE_VERSION = 1
CITATION = re.compile(r"\[(\d{1,2})\]")

RULES = """You are the customer-support assistant of {brand}. Voice: {voice}.
Rules:
{rules}"""

TROUBLESHOOTING = """Troubleshooting guide "{title}" (follow these steps in order):
{steps}
Ask the customer, if not known: {ask}
Hand over to a human agent when: {escalate}"""

SOURCES = """Sources:
{sources}"""

NO_SOURCES = "(none found: say that you do not know and offer a human agent)"

ROLES = {"system": "system", "human": "user", "ai": "assistant"}


@dataclass(frozen=True)
class BuiltPrompt:
    """The messages for the engine and what went into them."""

    messages: list[ChatMessage]
    sources: list[SearchHit]
    template: TroubleshootingTemplate | None


class PromptBuilder:
    """Turns a question, its retrieved chunks and template into engine messages."""

    def __init__(self, system: SystemPrompt, max_chunk_chars: int = 700) -> None:
        self._system = system
        self._max_chunk_chars = max_chunk_chars

    def build(
        self,
        question: str,
        hits: Sequence[SearchHit],
        template: TroubleshootingTemplate | None,
        history: Sequence[ChatMessage] = (),
    ) -> BuiltPrompt:
        parts: list[tuple[str, str]] = [("system", RULES)]
        values = {
            "brand": self._system.brand,
            "voice": self._system.voice,
            "rules": "\n".join(f"- {r}" for r in self._system.rules),
            "question": defuse(question),
            "history": [
                ("human" if m["role"] == "user" else "ai", defuse(m["content"])) for m in history
            ],
        }
        if template is not None:
            parts.append(("system", TROUBLESHOOTING))
            values |= _template_values(template)
        parts.append(("system", SOURCES))
        values["sources"] = (
            "\n\n".join(self._source(i, h) for i, h in enumerate(hits, 1)) or NO_SOURCES
        )
        prompt = ChatPromptTemplate.from_messages(
            [*parts, MessagesPlaceholder("history"), ("human", "{question}")]
        )
        messages = _to_engine(prompt.format_messages(**values))
        return BuiltPrompt(messages=messages, sources=list(hits), template=template)

    def empty(self) -> BuiltPrompt:
        """No prompt at all: the turn is answered without the model."""
        return BuiltPrompt(messages=[], sources=[], template=None)

    def _source(self, number: int, hit: SearchHit) -> str:
        text = hit.text
        if len(text) > self._max_chunk_chars:
            text = text[: self._max_chunk_chars].rsplit(" ", 1)[0] + " …"
        return f"[{number}] {hit.heading}\n{defuse(text)}"


def _template_values(template: TroubleshootingTemplate) -> dict[str, str]:
    return {
        "title": template.title,
        "steps": "\n".join(f"{i}. {s}" for i, s in enumerate(template.steps, 1)),
        "ask": " ".join(template.ask_customer) or "nothing further",
        "escalate": " ".join(template.escalate_when),
    }


def _to_engine(messages: Sequence[BaseMessage]) -> list[ChatMessage]:
    return [{"role": ROLES[m.type], "content": str(m.content)} for m in messages]  # type: ignore[typeddict-item]


def cited_numbers(answer: str, source_count: int) -> list[int]:
    """Citation numbers used in the answer that point at a source in the prompt, in order."""
    seen: list[int] = []
    for match in CITATION.finditer(answer):
        n = int(match.group(1))
        if 1 <= n <= source_count and n not in seen:
            seen.append(n)
    return seen
