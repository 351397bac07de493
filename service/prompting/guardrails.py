"""Guardrails: when to hand a conversation to a human, and keeping customer text as data.

Hand-off triggers: the customer asks for a human, shows frustration, raises a sensitive topic
(legal, billing disputes, safety…, from guardrails.yaml), or repeats the same problem right
after an answer. Once a troubleshooting template is chosen, its escalate_when conditions are
checked too: each is written in the template as cue patterns (escalate_cues), met when the
customer's own words in this conversation contain every cue group. Injection: chat-control
tokens in customer or document text are defused so they cannot open a new turn, and known
rule-changing phrases are flagged on the message.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from knowledge.catalog import (
    EscalationCue,
    GuardrailConfig,
    HandoffReason,
    TroubleshootingTemplate,
)
from service.prompting.selection import TextEmbedder

CONTROL_TOKENS = re.compile(
    r"<\s*/?\s*(start_of_turn|end_of_turn|bos|eos|pad|\|[a-z_]+\|)\s*>"
    r"|\[/?INST\]|<</?SYS>>",
    re.IGNORECASE,
)
SHOUTING_MIN_LETTERS = 12


@dataclass(frozen=True)
class Handoff:
    """Why a conversation goes to a human."""

    reason: HandoffReason
    detail: str = ""


def defuse(text: str) -> str:
    """Make chat-control tokens inert: '<end_of_turn>' becomes '‹end_of_turn›'."""
    return CONTROL_TOKENS.sub(lambda m: "‹" + m.group(0).strip("<>") + "›", text)


class Guardrails:
    """Hand-off and injection checks configured per tenant by guardrails.yaml."""

    def __init__(self, config: GuardrailConfig, embedder: TextEmbedder) -> None:
        self._config = config
        self._embedder = embedder
        self._human = _phrases(config.human_request)
        self._human_patterns = [re.compile(p, re.IGNORECASE) for p in config.human_request_patterns]
        self._frustration = _phrases(config.frustration)
        self._topics = {topic: _phrases(words) for topic, words in config.sensitive_topics.items()}
        self._injection = [re.compile(p, re.IGNORECASE) for p in config.injection_phrases]

    def handoff(self, message: str, previous_user_messages: Sequence[str]) -> Handoff | None:
        """The first hand-off trigger the message meets, or None."""
        if self._human.search(message) or any(p.search(message) for p in self._human_patterns):
            return Handoff("asked_for_human")
        for topic, pattern in self._topics.items():
            if found := pattern.search(message):
                return Handoff("sensitive_topic", f"{topic}: {found.group(0)}")
        if self._frustration.search(message) or _shouting(message):
            return Handoff("frustration")
        if previous_user_messages and self._repeats(message, previous_user_messages[-1]):
            return Handoff("repeated_problem")
        return None

    def escalation(
        self,
        template: TroubleshootingTemplate | None,
        message: str,
        previous_user_messages: Sequence[str],
    ) -> Handoff | None:
        """Hand-off when the customer's words meet one of the chosen template's escalate_when."""
        if template is None:
            return None
        said = "\n".join([*previous_user_messages, message])
        for rule in template.escalate_cues:
            if _meets(rule, said, message):
                condition = template.escalate_when[rule.condition - 1]
                return Handoff("escalation", f"{template.id} v{template.version}: {condition}")
        return None

    def _repeats(self, message: str, previous: str) -> bool:
        a, b = self._embedder.embed([message, previous])
        return sum(x * y for x, y in zip(a, b, strict=True)) >= self._config.repeat_similarity

    def injection_flags(self, text: str) -> list[str]:
        """'prompt_injection' and/or 'control_tokens' when the text tries to change the rules."""
        flags = []
        if any(p.search(text) for p in self._injection):
            flags.append("prompt_injection")
        if CONTROL_TOKENS.search(text):
            flags.append("control_tokens")
        return flags


def _phrases(phrases: Sequence[str]) -> re.Pattern[str]:
    if not phrases:
        return re.compile(r"(?!x)x")  # matches nothing
    alternatives = "|".join(re.escape(p.lower()) for p in sorted(phrases, key=len, reverse=True))
    return re.compile(rf"\b({alternatives})\b", re.IGNORECASE)


def _meets(rule: EscalationCue, said: str, message: str) -> bool:
    groups = [_patterns(group) for group in rule.cues]
    if rule.unless and _patterns(rule.unless).search(message):
        return False
    return all(g.search(said) for g in groups) and any(g.search(message) for g in groups)


def _patterns(patterns: Sequence[str]) -> re.Pattern[str]:
    """Any of the regular expressions, as whole words; re caches the compiled pattern."""
    return re.compile(rf"\b(?:{'|'.join(f'(?:{p})' for p in patterns)})\b", re.IGNORECASE)


def _shouting(message: str) -> bool:
    letters = [c for c in message if c.isalpha()]
    if len(letters) < SHOUTING_MIN_LETTERS:
        return False
    upper = sum(c.isupper() for c in letters) / len(letters)
    return upper > 0.7 or message.count("!") >= 3
