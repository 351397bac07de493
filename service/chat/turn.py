"""One accepted customer message on its way to an answer."""

from __future__ import annotations

from dataclasses import dataclass, field

from service.engines.base import SamplingParams
from service.prompting.builder import BuiltPrompt
from service.prompting.guardrails import Handoff
from service.store.models import DEFAULT_TENANT_ID


@dataclass(frozen=True)
class Caller:
    """Whose customer is asking, through which channel, and which products they may ask about."""

    tenant_id: str = DEFAULT_TENANT_ID
    channel: str = "api"
    customer_ref: str | None = None
    products: tuple[str, ...] | None = None  # None: every product in the catalog
    widget_key: str | None = None  # a publishable key: only its own conversations


@dataclass(frozen=True)
class Turn:
    """A question accepted and stored, with its prompt ready for the engine.

    `canned` is an answer that needs no model (a hand-off to a human); `flags` are what the
    guardrails noticed in the customer's message (prompt_injection, control_tokens).
    """

    conversation_id: str
    product: str | None
    prompt: BuiltPrompt
    received_at: float
    model: str
    adapter: str | None = None
    caller: Caller = Caller()
    model_version: str | None = None
    handoff: Handoff | None = None
    canned: str | None = None
    outcome: str | None = None  # handoff, out_of_scope or low_confidence when canned
    flags: list[str] = field(default_factory=list)
    sampling: SamplingParams | None = None  # this request's own; None: the configured one
    question_id: str | None = None  # the stored customer message, withdrawn if the engine is busy
    opened_conversation: bool = False  # this question started the conversation
