"""Ratings: store them, count them, and turn the best answers into few-shot examples."""

from __future__ import annotations

import asyncio

from service.metrics import Metrics
from service.prompting.examples import ExampleStore
from service.store.models import Rating
from service.store.repository import ConversationStore, RatingInput

GOOD_SCORE = 4


class RatingService:
    def __init__(self, store: ConversationStore, examples: ExampleStore, metrics: Metrics) -> None:
        self._store = store
        self._examples = examples
        self._metrics = metrics

    async def rate(self, message_id: str, rating: RatingInput) -> Rating:
        """Store a rating; a good or corrected answer becomes an example, a bad one stops being
        one."""
        row = await asyncio.to_thread(self._store.rate, message_id, rating)
        self._metrics.ratings.labels(rating.label or f"score_{rating.score}").inc()
        await asyncio.to_thread(self._update_example, message_id, rating)
        return row

    def _update_example(self, message_id: str, rating: RatingInput) -> None:
        answer = self._store.get_message(message_id)
        good = rating.label == "good" or (rating.score or 0) >= GOOD_SCORE
        text = rating.corrected_answer or (answer.content if good else None)
        if text is None:
            self._examples.remove(message_id)
            return
        question = self._store.question_for(answer)
        self._examples.add(message_id, question, text, answer.product)
