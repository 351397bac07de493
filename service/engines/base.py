"""The engine contract every LLM engine implements; the chat service sees nothing else."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, TypedDict


class ChatMessage(TypedDict):
    """One turn of a chat prompt."""

    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True)
class SamplingParams:
    """How to sample: temperature 0 means greedy decoding."""

    max_tokens: int = 192
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    ignore_eos: bool = False  # generate exactly max_tokens (benchmarks)
    stop: tuple[str, ...] = ()  # end the answer before the first of these; it is not sent


@dataclass(frozen=True)
class TextDelta:
    """A piece of generated text."""

    text: str


@dataclass(frozen=True)
class Completion:
    """The last event of a stream: token counts, time to first token, why it stopped."""

    prompt_tokens: int
    completion_tokens: int
    ttft_s: float | None
    finish_reason: Literal["stop", "length", "cancelled"]
    stop_sequence: str | None = None  # the stop string that ended the answer, if one did


EngineEvent = TextDelta | Completion


@dataclass(frozen=True)
class EngineHealth:
    ok: bool
    model: str
    detail: str = ""


class Engine(Protocol):
    """Streams chat completions from one base model and its adapters."""

    @property
    def model_name(self) -> str: ...

    async def start(self) -> None:
        """Load weights or connect; called once from the app's lifespan."""

    async def aclose(self) -> None:
        """Release the model or the connection."""

    def stream(
        self, messages: Sequence[ChatMessage], params: SamplingParams, adapter: str | None = None
    ) -> AsyncGenerator[EngineEvent]:
        """Yield TextDelta events, then exactly one Completion."""
        ...

    async def health(self) -> EngineHealth: ...

    async def list_adapters(self) -> list[str]:
        """Names of the LoRA adapters loaded now."""
        ...

    async def load_adapter(self, name: str, path: str) -> None:
        """Load (or replace) a LoRA adapter under `name`, without a restart."""

    async def unload_adapter(self, name: str) -> None:
        """Unload an adapter; AdapterNotFound if it is not loaded."""
