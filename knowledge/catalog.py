"""The knowledge base's YAML files: products, troubleshooting templates and system prompts.

Each file is validated on load; an error names the file and the field to fix.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator

Model = TypeVar("Model", bound=BaseModel)


class CatalogError(Exception):
    """A knowledge-base YAML file that is missing, unparsable or invalid."""


class Product(BaseModel):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    name: str
    aliases: list[str] = []
    current_version: str | None = None


class ProductCatalog(BaseModel):
    products: list[Product]

    def get(self, product_id: str) -> Product | None:
        return next((p for p in self.products if p.id == product_id), None)

    @property
    def ids(self) -> list[str]:
        return [p.id for p in self.products]

    def detect(self, text: str) -> str | None:
        """The one product a message names (by id, name or alias), or None if not exactly one."""
        lowered = text.lower()
        named = {
            p.id
            for p in self.products
            for alias in [p.id, p.name, *p.aliases]
            if re.search(rf"(?<![\w-]){re.escape(alias.lower())}(?![\w-])", lowered)
        }
        return named.pop() if len(named) == 1 else None


class TemplateMatch(BaseModel):
    """How a question finds the template: its error codes, phrases and example questions."""

    error_codes: list[str] = []
    keywords: list[str] = Field(default=[], description="Phrases that name the symptom.")
    examples: list[str] = Field(default=[], description="Ways a customer describes it.")
    intents: list[str] = Field(default=[], description="Category labels, not matched on.")

    @field_validator("error_codes")
    @classmethod
    def _upper(cls, codes: list[str]) -> list[str]:
        return [c.strip().upper() for c in codes]


class EscalationCue(BaseModel):
    """One escalate_when condition written as checkable cues in the customer's own words.

    The condition is met when every group has a match in what the customer wrote in this
    conversation, at least one of them in the newest message, and no `unless` pattern matches
    the newest message. Patterns are regular expressions, case-insensitive, on word boundaries.
    """

    condition: int = Field(ge=1, description="The escalate_when entry checked, counted from 1.")
    cues: list[list[str]] = Field(min_length=1)
    unless: list[str] = []

    @field_validator("cues")
    @classmethod
    def _groups_compile(cls, groups: list[list[str]]) -> list[list[str]]:
        for group in groups:
            if not group:
                raise ValueError("a cue group needs at least one pattern")
            _check_patterns(group)
        return groups

    @field_validator("unless")
    @classmethod
    def _unless_compiles(cls, patterns: list[str]) -> list[str]:
        return _check_patterns(patterns)


class TroubleshootingTemplate(BaseModel):
    """Ordered steps for one error code or symptom of one product, and when to escalate."""

    id: str
    version: int = Field(ge=1)
    product: str
    title: str
    match: TemplateMatch
    ask_customer: list[str] = []
    steps: list[str] = Field(min_length=1)
    escalate_when: list[str] = Field(min_length=1)
    escalate_cues: list[EscalationCue] = Field(min_length=1)
    sources: list[str] = []

    def escalation_problems(self) -> list[str]:
        """Cue rules that point at no condition, and conditions that no cue rule checks."""
        count = len(self.escalate_when)
        problems = [
            f"escalate_cues.{i}.condition: {rule.condition} but escalate_when has {count} entries"
            for i, rule in enumerate(self.escalate_cues)
            if rule.condition > count
        ]
        checked = {rule.condition for rule in self.escalate_cues}
        problems += [
            f"escalate_when.{n - 1}: condition {n} has no escalate_cues rule"
            for n in range(1, count + 1)
            if n not in checked
        ]
        return problems


DEFAULT_HANDOFF_REPLY = "I'm connecting you with a member of our support team now."


class SystemPrompt(BaseModel):
    """The brand voice and rules every answer follows."""

    id: str
    version: int = Field(ge=1)
    brand: str
    voice: str
    rules: list[str] = Field(min_length=1)
    out_of_scope_reply: str
    handoff_reply: str | None = None
    # What the customer is told when a conversation goes to a human, by sensitive topic
    # ("safety", as guardrails.yaml names them) or by hand-off reason ("frustration"); anything
    # not listed gets handoff_reply. A safety hand-off must say what to do first, not only "wait".
    handoff_replies: dict[str, str] = {}
    low_confidence_reply: str = (
        "I couldn't find this in our documentation, and I'd rather not guess. "
        "Would you like me to connect you with a member of our support team?"
    )

    def handoff_reply_for(self, reason: str, detail: str = "") -> str:
        """The reply for one hand-off: its topic's, else its reason's, else handoff_reply,
        else a plain announcement."""
        topic = detail.split(":", 1)[0].strip() if reason == "sensitive_topic" else ""
        return (
            self.handoff_replies.get(topic)
            or self.handoff_replies.get(reason)
            or self.handoff_reply
            or DEFAULT_HANDOFF_REPLY
        )


class GuardrailConfig(BaseModel):
    """Phrases that hand a conversation to a human, and that mark prompt-injection attempts."""

    version: int = Field(ge=1)
    human_request: list[str] = Field(min_length=1)
    human_request_patterns: list[str] = []  # regular expressions, for what phrases cannot say
    frustration: list[str] = []
    sensitive_topics: dict[str, list[str]] = {}
    repeat_similarity: float = Field(default=0.88, gt=0, le=1)
    injection_phrases: list[str] = []

    @field_validator("human_request_patterns", "injection_phrases")
    @classmethod
    def _compiles(cls, patterns: list[str]) -> list[str]:
        return _check_patterns(patterns)


def _check_patterns(patterns: list[str]) -> list[str]:
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"{pattern!r} is not a valid regular expression: {exc}") from exc
    return patterns


def load_yaml(path: Path, model: type[Model]) -> Model:
    """Parse and validate one YAML file, naming the file and field on error."""
    try:
        data: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise CatalogError(f"{path}: cannot read YAML: {exc}") from exc
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        fields = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}"
            for e in exc.errors()
        )
        raise CatalogError(f"{path}: {fields}") from exc


def load_products(directory: Path) -> ProductCatalog:
    return load_yaml(directory / "products.yaml", ProductCatalog)


def load_templates(directory: Path, catalog: ProductCatalog) -> list[TroubleshootingTemplate]:
    """All troubleshooting/*.yaml templates; ids must match file names and products exist."""
    templates = []
    for path in sorted((directory / "troubleshooting").glob("*.yaml")):
        template = load_yaml(path, TroubleshootingTemplate)
        if template.id != path.stem:
            raise CatalogError(f"{path}: id: {template.id!r} must equal the file name")
        if catalog.get(template.product) is None:
            raise CatalogError(f"{path}: product: unknown product {template.product!r}")
        if problems := template.escalation_problems():
            raise CatalogError(f"{path}: {'; '.join(problems)}")
        templates.append(template)
    return templates


def load_system_prompt(directory: Path, name: str = "system") -> SystemPrompt:
    return load_yaml(directory / "prompts" / f"{name}.yaml", SystemPrompt)


def load_guardrails(directory: Path) -> GuardrailConfig:
    return load_yaml(directory / "prompts" / "guardrails.yaml", GuardrailConfig)


# Why the guardrails hand a conversation to a human (service/prompting/guardrails.py).
HandoffReason = Literal[
    "asked_for_human", "sensitive_topic", "frustration", "repeated_problem", "escalation"
]
HANDOFF_REASONS: tuple[HandoffReason, ...] = get_args(HandoffReason)


def check_handoff_replies(
    directory: Path, system: SystemPrompt, guardrails: GuardrailConfig
) -> None:
    """A handoff_replies key that no hand-off can reach is a typo the operator must hear about."""
    known = [*guardrails.sensitive_topics, *HANDOFF_REASONS]
    unknown = sorted(set(system.handoff_replies) - set(known))
    if unknown:
        raise CatalogError(
            f"{directory / 'prompts' / 'system.yaml'}: handoff_replies: {', '.join(unknown)} "
            f"is neither a sensitive topic in guardrails.yaml nor a hand-off reason; "
            f"use one of: {', '.join(known)}"
        )
