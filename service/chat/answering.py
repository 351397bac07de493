"""One answer on its way from the engine to the customer: the model's raw text, what answer
hygiene lets through, and the usage to record when hygiene closed the engine stream early."""

from __future__ import annotations

import time
from dataclasses import dataclass

from service.chat.hygiene import AnswerGuard, Cleaned
from service.chat.turn import Turn
from service.engines.base import Completion, TextDelta


@dataclass
class Answering:
    """One answer on its way out: the model's raw text, what hygiene lets through, usage."""

    guard: AnswerGuard | None  # None: one of the brand's fixed texts
    raw: str = ""
    deltas: int = 0
    completion: Completion | None = None
    first_token_at: float | None = None

    def take(self, event: TextDelta | Completion) -> str:
        """The text to send for this engine event."""
        if isinstance(event, Completion):
            self.completion = event
            if event.stop_sequence is not None and self.guard is not None:
                self.guard.stopped_on(event.stop_sequence)
            return ""
        self.first_token_at = self.first_token_at or time.perf_counter()
        self.raw += event.text
        self.deltas += 1
        return self.guard.feed(event.text) if self.guard else event.text

    @property
    def cut(self) -> bool:
        return self.guard is not None and self.guard.verdict is not None

    @property
    def retracted(self) -> bool:
        return self.guard is not None and self.guard.retracted

    def finish(self) -> str:
        return self.guard.finish() if self.guard else ""

    def cleaned(self) -> Cleaned:
        return self.guard.result() if self.guard else Cleaned(self.raw.strip())

    def usage(self, turn: Turn) -> Completion | None:
        """The engine's own counts; for an answer cut short (the engine stream closed before
        its last event), one delta per generated token and the prompt builder's count."""
        if self.completion is not None or not self.cut:
            return self.completion
        prompt_tokens = turn.prompt.token_counts.get("total", 0)
        return Completion(prompt_tokens, self.deltas, None, "stop")
