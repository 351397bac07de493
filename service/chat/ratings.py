"""Ratings: store them, count them, announce them, and turn the best answers into examples."""

from __future__ import annotations

import asyncio

from service.events import EventBus
from service.metrics import Metrics, version_label
from service.prompting.examples import ExampleStore
from service.store.models import Message, Rating
from service.store.repository import ConversationStore, RatingInput

GOOD_SCORE = 4


class RatingService:
    def __init__(
        self, store: ConversationStore, examples: ExampleStore, metrics: Metrics, events: EventBus
    ) -> None:
        self._store = store
        self._examples = examples
        self._metrics = metrics
        self._events = events

    async def rate(
        self, tenant_id: str, message_id: str, rating: RatingInput, widget_key: str | None = None
    ) -> Rating:
        """Store a rating; a good or corrected answer becomes an example, a bad one stops being
        one. A widget key rates only answers in conversations it started."""
        row = await asyncio.to_thread(self._store.rate, tenant_id, message_id, rating, widget_key)
        answer = await asyncio.to_thread(self._store.get_message, message_id, tenant_id)
        self._count(tenant_id, answer, rating)
        await asyncio.to_thread(self._update_example, tenant_id, answer, rating)
        await self._events.publish(tenant_id, "message.rated", _event_data(answer, row))
        return row

    def _count(self, tenant_id: str, answer: Message, rating: RatingInput) -> None:
        label = rating.label or ("good" if (rating.score or 0) >= GOOD_SCORE else "bad")
        version = version_label(answer.model_version, answer.adapter)
        channel = answer.conversation.channel
        self._metrics.ratings.labels(tenant_id, answer.product or "", version, channel, label).inc()

    def _update_example(self, tenant_id: str, answer: Message, rating: RatingInput) -> None:
        good = rating.label == "good" or (rating.score or 0) >= GOOD_SCORE
        text = rating.corrected_answer or (answer.content if good else None)
        if text is None:
            self._examples.remove(answer.id)
            return
        question = self._store.question_for(answer)
        self._examples.add(answer.id, question, text, answer.product, tenant_id)


def _event_data(answer: Message, row: Rating) -> dict[str, object]:
    return {
        "conversation_id": answer.conversation_id,
        "message_id": answer.id,
        "rating_id": row.id,
        "by": row.rater,
        "rating": row.label,
        "score": row.score,
        "corrected_answer": row.corrected_answer,
        "tags": row.tags or [],
        "comment": row.comment,
    }
