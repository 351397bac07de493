"""The embedded CPU engine: transformers on the prepared model, streamed from worker threads."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncGenerator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from service.engines.artifacts import read_manifest
from service.engines.base import (
    ChatMessage,
    Completion,
    EngineEvent,
    EngineHealth,
    SamplingParams,
    TextDelta,
)
from service.engines.chat_template import END_OF_TURN
from service.errors import EngineBusy, InvalidRequest, ModelNotPrepared

_DONE = object()


class _QueueStreamer:
    """A transformers streamer that decodes incrementally and hands text to the event loop."""

    def __init__(self, tokenizer: Any, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[Any]):
        self._tokenizer = tokenizer
        self._loop = loop
        self._queue = queue
        self._ids: list[int] = []
        self._sent = 0
        self._prompt_seen = False
        self.first_token_at: float | None = None

    def put(self, value: Any) -> None:
        if not self._prompt_seen:  # generate() first hands over the prompt itself
            self._prompt_seen = True
            return
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()
        self._ids.extend(int(t) for t in value.reshape(-1).tolist())
        text = self._tokenizer.decode(self._ids, skip_special_tokens=True)
        if text.endswith("\ufffd"):  # half a UTF-8 character: wait for the rest
            return
        if len(text) > self._sent:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, TextDelta(text[self._sent :]))
            self._sent = len(text)

    def end(self) -> None:
        pass


def quantize_int8(model: Any) -> Any:
    """Dynamic int8 linear layers: decoding on CPU is memory-bound, and int8 reads 4x less.

    The 262k-token output projection alone is 671 MB in fp32, 45 ms a token on this machine.
    """
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (DeprecationWarning, UserWarning))
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


class LocalEngine:
    """Greedy or sampled generation with transformers on CPU; at most `max_concurrency` at once."""

    def __init__(
        self,
        model_dir: Path,
        *,
        max_concurrency: int = 1,
        max_queue: int = 16,
        threads: int | None = None,
        weights: str = "int8",
    ) -> None:
        self._dir = model_dir
        self._max_concurrency = max_concurrency
        self._max_waiting = max_concurrency + max_queue
        self._threads = threads
        self._weights = weights
        self._in_flight = 0
        self._executor = ThreadPoolExecutor(max_concurrency, thread_name_prefix="local-engine")
        self._slots = asyncio.Semaphore(max_concurrency)
        self._model: Any = None
        self._tokenizer: Any = None
        self._stop_ids: list[int] = []

    @property
    def model_name(self) -> str:
        return self._dir.name

    async def start(self) -> None:
        if not (self._dir / "config.json").is_file():
            raise ModelNotPrepared(f"No model in {self._dir}. Run `tunedesk model prepare` first.")
        await asyncio.to_thread(self._load)

    def _load(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if self._threads:
            torch.set_num_threads(self._threads)
        self._tokenizer = AutoTokenizer.from_pretrained(str(self._dir))
        self._model = AutoModelForCausalLM.from_pretrained(str(self._dir), dtype=torch.float32)
        self._model.eval()
        if self._weights == "int8":
            self._model = quantize_int8(self._model)
        end_of_turn = self._tokenizer.convert_tokens_to_ids(END_OF_TURN)
        self._stop_ids = [i for i in {self._tokenizer.eos_token_id, end_of_turn} if i is not None]

    async def aclose(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._model = None

    async def health(self) -> EngineHealth:
        loaded = self._model is not None
        detail = f"{self._in_flight} in flight" if loaded else "model not loaded"
        manifest = read_manifest(self._dir) or {}
        return EngineHealth(
            ok=loaded, model=manifest.get("base_model", self.model_name), detail=detail
        )

    def render(self, messages: Sequence[ChatMessage]) -> list[int]:
        """Prompt token ids, rendered with the tokenizer's chat template."""
        ids = self._tokenizer.apply_chat_template(
            list(messages), add_generation_prompt=True, tokenize=True, return_dict=False
        )
        return list(ids)

    async def stream(
        self, messages: Sequence[ChatMessage], params: SamplingParams, adapter: str | None = None
    ) -> AsyncGenerator[EngineEvent]:
        if adapter is not None:
            raise InvalidRequest(f"Adapter {adapter!r} is not loaded in the local engine.")
        if self._in_flight >= self._max_waiting:
            raise EngineBusy("The engine is busy; retry shortly.", headers={"Retry-After": "5"})
        self._in_flight += 1
        try:
            async with self._slots:
                async for event in self._generate(messages, params):
                    yield event
        finally:
            self._in_flight -= 1

    async def _generate(
        self, messages: Sequence[ChatMessage], params: SamplingParams
    ) -> AsyncGenerator[EngineEvent]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        cancel = threading.Event()
        prompt_ids = self.render(messages)
        streamer = _QueueStreamer(self._tokenizer, loop, queue)
        started = time.perf_counter()

        def work() -> None:
            try:
                completion = self._run(prompt_ids, params, streamer, cancel, started)
                loop.call_soon_threadsafe(queue.put_nowait, completion)
            except BaseException as exc:  # handed to the event loop, re-raised there
                loop.call_soon_threadsafe(queue.put_nowait, exc)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, _DONE)

        future = loop.run_in_executor(self._executor, work)
        try:
            while (item := await queue.get()) is not _DONE:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            cancel.set()  # the client went away or we finished: stop the worker either way
            await asyncio.shield(future)

    def _run(
        self,
        prompt_ids: list[int],
        params: SamplingParams,
        streamer: _QueueStreamer,
        cancel: threading.Event,
        started: float,
    ) -> Completion:
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        class _Cancelled(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> bool:
                return cancel.is_set()

        if params.seed is not None:
            torch.manual_seed(params.seed)
        sampling = params.temperature > 0
        with torch.inference_mode():
            output = self._model.generate(
                torch.tensor([prompt_ids]),
                max_new_tokens=params.max_tokens,
                do_sample=sampling,
                temperature=params.temperature if sampling else None,
                top_p=params.top_p if sampling else None,
                top_k=None,
                eos_token_id=self._stop_ids,
                pad_token_id=self._tokenizer.pad_token_id,
                streamer=streamer,
                stopping_criteria=StoppingCriteriaList([_Cancelled()]),
            )
        generated = output[0, len(prompt_ids) :].tolist()
        return Completion(
            prompt_tokens=len(prompt_ids),
            completion_tokens=len(generated),
            ttft_s=(streamer.first_token_at - started) if streamer.first_token_at else None,
            finish_reason=self._finish_reason(generated, params, cancel),
        )

    def _finish_reason(
        self, generated: list[int], params: SamplingParams, cancel: threading.Event
    ) -> Any:
        if cancel.is_set():
            return "cancelled"
        if generated and generated[-1] in self._stop_ids:
            return "stop"
        return "length" if len(generated) >= params.max_tokens else "stop"
