"""Distillation: a larger model behind any OpenAI-compatible endpoint answers the prompts that
have no good answer yet (unrated, or rated bad without an agent's correction), and those answers
become SFT examples for the small model.

The teacher gets exactly the messages the small model saw (rules, template, numbered sources,
history, question), so the student learns to answer the service's own prompts. Its answers are
scrubbed like every other example; the manifest records the endpoint, the model and the counts.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

from training.examples import SFTExample


class TeacherError(RuntimeError):
    """The teacher endpoint cannot be used at all (unreachable, unknown model, bad key)."""


@dataclass(frozen=True)
class TeacherSettings:
    """Where the teacher is and how it is asked."""

    url: str  # the OpenAI-compatible base URL, e.g. http://gpu-box:8001/v1
    model: str | None = None  # None: the first model the endpoint lists
    api_key: str = "EMPTY"
    max_tokens: int = 512
    temperature: float = 0.0
    timeout_s: float = 120.0
    max_retries: int = 2


@dataclass
class Distilled:
    """The teacher's examples and what happened on the way."""

    examples: list[SFTExample] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    model: str | None = None


def distill(items: list[SFTExample], settings: TeacherSettings) -> Distilled:
    """Ask the teacher for an answer to every prompt; an empty or failed answer is counted,
    not fatal, unless the endpoint is unusable (then TeacherError before anything is asked)."""
    import openai

    client = openai.OpenAI(
        base_url=settings.url,
        api_key=settings.api_key,
        timeout=settings.timeout_s,
        max_retries=settings.max_retries,
    )
    model = settings.model or _first_model(client, settings.url)
    result = Distilled(model=model)
    for item in items:
        result.counts["asked"] += 1
        try:
            answer, finish = _ask(client, model, item, settings)
        except openai.APIStatusError as exc:
            if exc.status_code in (401, 403, 404):
                raise TeacherError(f"The teacher at {settings.url} refused: {exc.message}") from exc
            result.counts[f"failed:{exc.status_code}"] += 1
            continue
        except openai.APIConnectionError as exc:
            raise TeacherError(f"The teacher at {settings.url} is unreachable: {exc}") from exc
        if finish == "length":  # a cut-off answer would teach the student to stop mid-sentence
            result.counts["cut_off"] += 1
            continue
        if not answer:
            result.counts["empty"] += 1
            continue
        result.counts["answered"] += 1
        result.examples.append(replace(item, completion=answer))
    return result


def _first_model(client: Any, url: str) -> str:
    import openai

    try:
        models = [m.id for m in client.models.list()]
    except (openai.APIConnectionError, openai.APIStatusError) as exc:
        raise TeacherError(f"Cannot list the models of the teacher at {url}: {exc}") from exc
    if not models:
        raise TeacherError(f"The teacher at {url} serves no model; pass --teacher-model.")
    return str(models[0])


def _ask(client: Any, model: str, item: SFTExample, settings: TeacherSettings) -> tuple[str, str]:
    """The answer's text and finish reason."""
    reply = client.chat.completions.create(
        model=model,
        messages=item.prompt,
        max_tokens=settings.max_tokens,
        temperature=settings.temperature,
    )
    if not reply.choices:
        return "", "empty"
    choice = reply.choices[0]
    return str(choice.message.content or "").strip(), str(choice.finish_reason)
