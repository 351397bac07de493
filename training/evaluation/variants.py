"""The four variants and the prompt each one gives the model.

- base: the question alone (after the conversation so far, if any), to the base model;
- prompted: the service's whole prompt layer (service/app.py's `build_prompt_layer`: retrieval,
  troubleshooting template, few-shot examples, guardrails), to the base model;
- tuned: the question alone, to the adapter;
- tuned+prompted: the prompt layer and the adapter.

Prompted variants plan each question the way the chat service does: hand-off check, hybrid
search with the history, template choice, similar rated examples, the prompt builder, then the
scope guard. A question the service answers with a fixed text (hand-off, out of scope, low
confidence) gets that text, without the model, exactly as a customer would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from knowledge.catalog import ProductCatalog, SystemPrompt
from knowledge.index import KnowledgeIndex
from service.chat.service import PromptLayer
from service.engines.base import ChatMessage
from training.evaluation.cases import AnswerCase

VARIANTS = ("base", "prompted", "tuned", "tuned+prompted")


@dataclass(frozen=True)
class Variant:
    """A way to answer: with or without the prompt layer, with or without the adapter."""

    name: str

    @property
    def prompted(self) -> bool:
        return self.name.endswith("prompted")

    @property
    def tuned(self) -> bool:
        return self.name.startswith("tuned")


def parse_variants(text: str) -> list[Variant]:
    """`base,prompted,...` → variants, in the given order; unknown names are refused."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown or not names:
        raise ValueError(
            f"unknown variant(s) {unknown or text!r}: choose from {', '.join(VARIANTS)}"
        )
    return [Variant(n) for n in dict.fromkeys(names)]


@dataclass(frozen=True)
class Plan:
    """The engine messages for one question, or the fixed text that answers it instead."""

    messages: list[ChatMessage]
    sources: list[str] = field(default_factory=list)  # what [1], [2]... point at
    chunk_ids: list[str] = field(default_factory=list)  # the chunks behind [1], [2]...
    source_texts: list[str] = field(default_factory=list)  # their texts (hygiene allows copying)
    prompt_tokens: int = 0  # the prompt builder's count, for answers whose stream was closed early
    canned: str | None = None
    outcome: str = "model"  # or handoff, out_of_scope, low_confidence


class Planner(Protocol):
    """Turns a question into what the model sees."""

    def plan(self, case: AnswerCase) -> Plan: ...


class BarePlanner:
    """The question alone, after the conversation's earlier turns: no rules, no sources."""

    def plan(self, case: AnswerCase) -> Plan:
        return Plan([*case.history, {"role": "user", "content": case.question}])


class RecordedPlanner:
    """The prompt the service rendered for this answer (held-out rated transcripts)."""

    def plan(self, case: AnswerCase) -> Plan:
        assert case.prompt is not None
        return Plan(list(case.prompt), list(case.prompt_sources))


@dataclass(frozen=True)
class PlanningLimits:
    """The service's chat settings that shape a prompt."""

    top_k: int
    max_examples: int
    example_similarity: float
    guardrails: bool = True


class ServicePlanner:
    """The chat service's planning (ChatService.start_turn), without storing anything."""

    def __init__(
        self,
        layer: PromptLayer,
        index: KnowledgeIndex,
        catalog: ProductCatalog,
        limits: PlanningLimits,
    ) -> None:
        self._layer = layer
        self._index = index
        self._catalog = catalog
        self._limits = limits

    def plan(self, case: AnswerCase) -> Plan:
        product = case.product or self._catalog.detect(case.question)
        if self._limits.guardrails and (handoff := self._handoff(case)) is not None:
            return handoff
        hits = self._index.search(case.question, product, self._limits.top_k, case.history)
        template = self._layer.selector.select(case.question, product)
        examples = self._layer.examples.similar(
            case.question, product, self._limits.max_examples, self._limits.example_similarity
        )
        built = self._layer.builder.build(case.question, hits, template, case.history, examples)
        if self._limits.guardrails:
            scope = self._layer.scope.judge(
                case.question, built.sources, product, built.template is not None, case.history
            )
            if scope != "in_scope":
                return Plan([], canned=self._reply(scope), outcome=scope)
        return Plan(
            built.messages,
            [hit.doc_id for hit in built.sources],
            [hit.chunk_id for hit in built.sources],
            [hit.text for hit in built.sources],
            built.token_counts.get("total", 0),
        )

    def _handoff(self, case: AnswerCase) -> Plan | None:
        asked_before = [m["content"] for m in case.history if m["role"] == "user"]
        handoff = self._layer.guardrails.handoff(case.question, asked_before)
        if handoff is None:
            return None
        reply = self._layer.system.handoff_reply_for(handoff.reason, handoff.detail)
        return Plan([], canned=reply, outcome="handoff")

    def _reply(self, scope: str) -> str:
        system = self._layer.system
        return system.out_of_scope_reply if scope == "out_of_scope" else system.low_confidence_reply


def canned_replies(system: SystemPrompt) -> list[str]:
    """The brand's fixed refusals, which count as refusing."""
    return [
        system.out_of_scope_reply,
        system.low_confidence_reply,
    ]
