"""OpenAI chat-completions request and response bodies (the subset a support bot honours)."""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from service.chat.schemas import ChatResponse

AUTO_MODEL = "tunedesk"


class CompletionMessage(BaseModel):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[dict[str, Any]] = Field(description="Text, or text parts.")

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(str(p.get("text", "")) for p in self.content if p.get("type") == "text")


class CompletionRequest(BaseModel):
    """`model` is `tunedesk` (the product is detected) or a product id. System messages are
    ignored: the tenant's rules decide how the bot behaves. `max_tokens` (or
    `max_completion_tokens`) above the server's answer cap is clamped to it; `temperature`
    (0 to 2) is passed to the engine. Extensions (send them with the openai client's
    `extra_body`): `conversation_id` continues a stored conversation, in which case only the
    last user message is new."""

    model: str = Field(default=AUTO_MODEL, max_length=100)
    messages: list[CompletionMessage] = Field(min_length=1, max_length=200)
    stream: bool = False
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    user: str | None = Field(default=None, max_length=200, description="Your customer id.")
    conversation_id: str | None = Field(default=None, max_length=64)

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "model": "halcyon-router-x1000",
                    "messages": [{"role": "user", "content": "My router shows E5"}],
                }
            ]
        }
    }

    @field_validator("messages")
    @classmethod
    def _ends_with_a_question(cls, messages: list[CompletionMessage]) -> list[CompletionMessage]:
        if messages[-1].role != "user" or not messages[-1].text().strip():
            raise ValueError("the last message must be a non-empty user message")
        return messages


def completion(response: ChatResponse, model: str) -> dict[str, Any]:
    """A `chat.completion` object, with tunedesk's sources and hand-off under `tunedesk`."""
    usage = response.usage
    return {
        "id": f"chatcmpl-{response.message_id}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": response.answer},
                "finish_reason": finish_reason(response.finish_reason),
            }
        ],
        "usage": {
            "prompt_tokens": usage.get("prompt_tokens", 0),
            "completion_tokens": usage.get("completion_tokens", 0),
            "total_tokens": usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0),
        },
        "tunedesk": extension(response),
    }


def chunk(
    completion_id: str, model: str, delta: dict[str, str], finish: str | None = None
) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def extension(response: ChatResponse) -> dict[str, Any]:
    """tunedesk's own fields; `answer` too when the streamed content must be replaced by it."""
    fields = {"conversation_id", "message_id", "sources", "citations", "handoff", "product"}
    fields |= {"replaced", "cleaned"} | ({"answer"} if response.replaced else set())
    return response.model_dump(mode="json", include=fields)


def max_tokens(request: CompletionRequest) -> int | None:
    """The answer length asked for (max_completion_tokens wins, as in OpenAI's API)."""
    return request.max_completion_tokens or request.max_tokens


def finish_reason(reason: str) -> str:
    """OpenAI knows stop and length; hand-offs and refusals are complete answers (stop)."""
    return "length" if reason == "length" else "stop"
