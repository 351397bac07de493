"""Choose the troubleshooting template for a question: error code first, then symptom words."""

from __future__ import annotations

import re
from collections.abc import Sequence

from knowledge.catalog import TroubleshootingTemplate

ERROR_CODE = re.compile(r"\b([a-z]{1,2})[\s-]?(\d{1,3})\b", re.IGNORECASE)
CODE_WEIGHT = 10.0
MIN_KEYWORD_SCORE = 1.0


def error_codes(text: str) -> set[str]:
    """Things that look like error codes ("E5", "e-05" → "E5")."""
    return {f"{m.group(1).upper()}{int(m.group(2))}" for m in ERROR_CODE.finditer(text)}


class TemplateSelector:
    """Scores templates by error code and keyword phrases, restricted to the product if known."""

    def __init__(self, templates: Sequence[TroubleshootingTemplate]) -> None:
        self._templates = list(templates)

    def select(self, question: str, product: str | None) -> TroubleshootingTemplate | None:
        candidates = [t for t in self._templates if product is None or t.product == product]
        scored = [(self._score(t, question), t) for t in candidates]
        scored = [(s, t) for s, t in scored if s >= MIN_KEYWORD_SCORE]
        if not scored:
            return None
        return max(scored, key=lambda pair: pair[0])[1]

    @staticmethod
    def _score(template: TroubleshootingTemplate, question: str) -> float:
        lowered = question.lower()
        codes = error_codes(question)
        score = CODE_WEIGHT * len(codes & set(template.match.error_codes))
        if codes and template.match.error_codes and not score:
            return 0.0  # the customer quoted a different code
        for phrase in template.match.keywords:
            if re.search(rf"\b{re.escape(phrase.lower())}\b", lowered):
                score += 1.0 + 0.1 * phrase.count(" ")
        return score
