"""Turn-list dialogues from other tools → transcripts.

`tweetsumm_transcripts` reads TweetSumm's `dialogs_with_text.jsonl` (real Twitter customer care:
emoji, links, handles, several agents, customers writing several tweets in a row). It exists to
test that import, scrubbing and dataset building cope with real, messy conversations; its text
is licensed for research (CC BY-NC-SA) and must never be shipped as training data.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from itertools import groupby
from pathlib import Path
from typing import Any, Literal

from training.transcripts import RatingRecord, Transcript, TranscriptMessage

ROLES = {"customer": "user", "agent": "assistant"}
Label = Literal["good", "bad"]


def dialogue_transcript(
    dialogue_id: str, turns: Sequence[tuple[str, str]], rate_answers: Label | None = None
) -> Transcript:
    """(role, text) turns → a transcript; consecutive turns of one side become one message.

    With `rate_answers` ("good" or "bad"), every answer gets an agent rating with that label.
    """
    messages = []
    for number, (role, group) in enumerate(groupby(turns, key=lambda t: ROLES[t[0]])):
        text = "\n".join(t[1].strip() for t in group if t[1].strip())
        message_id = f"{dialogue_id}-m{number}"
        ratings = []
        if role == "assistant" and rate_answers:
            ratings = [RatingRecord(id=f"{message_id}-r", rater="agent", label=rate_answers)]
        messages.append(
            TranscriptMessage(id=message_id, role=role, content=text, ratings=ratings)  # type: ignore[arg-type]
        )
    return Transcript(conversation_id=dialogue_id, channel="import", messages=messages)


def tweetsumm_transcripts(
    path: Path, limit: int | None = None, rate_answers: Label | None = None
) -> Iterator[Transcript]:
    """TweetSumm dialogues as transcripts, in file order."""
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines):
            if limit is not None and number >= limit:
                return
            record: dict[str, Any] = json.loads(line)
            turns = [(t["role"], t["text"]) for t in record["turns"] if t["role"] in ROLES]
            yield dialogue_transcript(record["dialog_id"], turns, rate_answers)
