"""Assemble one chat prompt with LangChain, stable parts first so engines can reuse the prefix.

Order: system rules → troubleshooting template → few-shot examples and numbered sources →
history → question. Rules and template are system messages of their own; examples and sources
share the last one. Every leading system message but the last is stable across questions, which
is where the CPU engine caches keys and values.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from langchain_core.messages import BaseMessage
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder, PromptTemplate

from knowledge.catalog import SystemPrompt, TroubleshootingTemplate
from knowledge.index import SearchHit
from service.engines.base import ChatMessage
from service.prompting.examples import Example
from service.prompting.excerpt import excerpt
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

EXAMPLES_HEADER = (
    "Answers our team rated good for similar questions (follow their style; take facts only "
    "from the sources):"
)
NO_SOURCES = "(none found: say that you do not know and offer a human agent)"

ROLES = {"system": "system", "human": "user", "ai": "assistant"}
MESSAGE_OVERHEAD = 4  # turn markers around each message


@dataclass(frozen=True)
class BuiltPrompt:
    """The messages for the engine, what went into them, and their token counts per part."""

    messages: list[ChatMessage]
    sources: list[SearchHit]
    template: TroubleshootingTemplate | None
    token_counts: dict[str, int] = field(default_factory=dict)
    examples: list[Example] = field(default_factory=list)


@dataclass(frozen=True)
class PromptBudget:
    """How many prompt tokens a question may cost. Rules and question are never cut; sources
    are kept in rank order while they fit, then history, newest first."""

    max_tokens: int = 1536
    history_tokens: int = 384


def estimate_tokens(text: str) -> int:
    """Used when no tokenizer is at hand: about four characters a token in English."""
    return len(text) // 4 + 1


def token_counter(model_dir: Path) -> Callable[[str], int]:
    """Counts with the model's own tokenizer (the one an in-process engine uses too: one copy
    per process, service/engines/tokenizer.py), else estimates."""
    if not (model_dir / "tokenizer.json").is_file():
        return estimate_tokens
    from service.engines.tokenizer import shared_tokenizer

    tokenizer = shared_tokenizer(model_dir)  # the closure holds it: it stays loaded
    return lambda text: len(tokenizer.backend_tokenizer.encode(text, add_special_tokens=False).ids)


class PromptBuilder:
    """Turns a question, its retrieved chunks and template into engine messages."""

    def __init__(
        self,
        system: SystemPrompt,
        *,
        count_tokens: Callable[[str], int] = estimate_tokens,
        budget: PromptBudget | None = None,
        max_chunk_chars: int = 700,
    ) -> None:
        self._count = count_tokens
        self._budget = budget or PromptBudget()
        self._max_chunk_chars = max_chunk_chars
        self._rules = PromptTemplate.from_template(RULES).format(
            brand=system.brand,
            voice=system.voice,
            rules="\n".join(f"- {r}" for r in system.rules),
        )

    def build(
        self,
        question: str,
        hits: Sequence[SearchHit],
        template: TroubleshootingTemplate | None,
        history: Sequence[ChatMessage] = (),
        examples: Sequence[Example] = (),
    ) -> BuiltPrompt:
        question = defuse(question)
        guide = _guide(template) if template is not None else None
        counts = {"rules": self._count(self._rules), "question": self._count(question)}
        counts["troubleshooting"] = self._count(guide) if guide else 0
        left = self._budget.max_tokens - sum(counts.values()) - MESSAGE_OVERHEAD * 3
        past: list[tuple[str, str]] = [(m["role"], defuse(m["content"])) for m in history]
        reserve = min(self._budget.history_tokens, sum(self._count(t) for _, t in past))
        kept, sources = self._fit_sources(question, hits, left - reserve)
        counts["sources"] = self._count(sources)
        shown, shots = self._fit_examples(examples, left - reserve - counts["sources"])
        counts["examples"] = self._count(shots) if shots else 0
        turns = self._fit_history(past, left - counts["sources"] - counts["examples"])
        counts["history"] = sum(self._count(t) + MESSAGE_OVERHEAD for _, t in turns)
        volatile = f"{shots}\n\n{sources}" if shots else sources
        messages = self._assemble(guide, volatile, turns, question)
        counts["total"] = sum(counts.values()) + MESSAGE_OVERHEAD * len(messages)
        return BuiltPrompt(messages, kept, template, counts, shown)

    def _fit_examples(self, examples: Sequence[Example], room: int) -> tuple[list[Example], str]:
        shown: list[Example] = []
        for example in examples:
            text = _examples_text([*shown, example])
            if self._count(text) > room:
                break
            shown.append(example)
        return shown, _examples_text(shown) if shown else ""

    def _fit_sources(
        self, question: str, hits: Sequence[SearchHit], room: int
    ) -> tuple[list[SearchHit], str]:
        kept: list[SearchHit] = []
        blocks: list[str] = []
        for hit in hits:
            block = self._source(len(kept) + 1, hit, question)
            if kept and self._count("\n\n".join([*blocks, block])) > room:
                break  # the best-ranked source is always kept, even over budget
            kept.append(hit)
            blocks.append(block)
        text = "\n\n".join(blocks) or NO_SOURCES
        return kept, PromptTemplate.from_template(SOURCES).format(sources=text)

    def _fit_history(self, past: list[tuple[str, str]], room: int) -> list[tuple[str, str]]:
        kept: list[tuple[str, str]] = []
        for role, text in reversed(past):  # newest first
            room -= self._count(text) + MESSAGE_OVERHEAD
            if room < 0:
                break
            kept.insert(0, (role, text))
        if kept and kept[0][0] == "assistant":
            kept = kept[1:]  # start the history with the customer, as a conversation does
        return kept

    def _assemble(
        self, guide: str | None, sources: str, turns: list[tuple[str, str]], question: str
    ) -> list[ChatMessage]:
        systems = [self._rules, *([guide] if guide else []), sources]
        prompt = ChatPromptTemplate.from_messages(
            [
                *[("system", f"{{system_{i}}}") for i in range(len(systems))],
                MessagesPlaceholder("history"),
                ("human", "{question}"),
            ]
        )
        values: dict[str, object] = {f"system_{i}": text for i, text in enumerate(systems)}
        history = [("human" if role == "user" else "ai", text) for role, text in turns]
        return _to_engine(prompt.format_messages(**values, history=history, question=question))

    def empty(self) -> BuiltPrompt:
        """No prompt at all: the turn is answered without the model."""
        return BuiltPrompt(messages=[], sources=[], template=None)

    def _source(self, number: int, hit: SearchHit, question: str) -> str:
        text = excerpt(hit.text, question, self._max_chunk_chars)
        return f"[{number}] {hit.heading}\n{defuse(text)}"


def _examples_text(examples: Sequence[Example]) -> str:
    shots = "\n\n".join(
        f"Customer: {defuse(e.question)}\nAgent: {defuse(e.answer)}" for e in examples
    )
    return f"{EXAMPLES_HEADER}\n{shots}"


def _guide(template: TroubleshootingTemplate) -> str:
    return PromptTemplate.from_template(TROUBLESHOOTING).format(**_template_values(template))


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
