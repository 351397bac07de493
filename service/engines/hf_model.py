"""The model runtime behind the local engine: transformers + PEFT on CPU, synchronous.

One base model, loaded once, optionally with int8 linear layers; LoRA adapters are loaded into
the same PEFT wrapper and chosen per request (`adapter_names`), so switching costs nothing.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service.engines.base import ChatMessage, SamplingParams
from service.engines.chat_template import END_OF_TURN
from service.engines.prefix_cache import PrefixCache
from service.errors import AdapterNotFound, InvalidAdapter

BASE = "__base__"  # PEFT's name for "no adapter" in mixed-adapter inference
MIN_PREFIX_TOKENS = 32


@dataclass(frozen=True)
class Prompt:
    """Token ids of a rendered prompt and where its stable prefixes end (ascending)."""

    ids: list[int]
    boundaries: list[int]


class HFModel:
    """Loads the model once; renders prompts; generates with adapters and prefix reuse."""

    def __init__(self, model_dir: Path, weights: str = "int8", prefix_cache_size: int = 8):
        self.model_dir = model_dir
        self._weights = weights
        self.prefix_cache = PrefixCache(prefix_cache_size)
        self.adapters: dict[str, str] = {}
        self.tokenizer: Any = None
        self.model: Any = None
        self.stop_ids: list[int] = []

    def load(self, threads: int | None = None) -> None:
        import torch
        from transformers import AutoModelForCausalLM

        from service.engines.quantization import quantize_linear_layers
        from service.engines.tokenizer import shared_tokenizer

        if threads:
            torch.set_num_threads(threads)
        self.tokenizer = shared_tokenizer(self.model_dir)  # the token counter's copy too
        model = AutoModelForCausalLM.from_pretrained(str(self.model_dir), dtype=torch.float32)
        model.eval()
        if self._weights in ("int8", "int8-head"):
            quantize_linear_layers(model, head_only=self._weights == "int8-head")  # in place
        self.model = model
        end_of_turn = self.tokenizer.convert_tokens_to_ids(END_OF_TURN)
        self.stop_ids = [i for i in {self.tokenizer.eos_token_id, end_of_turn} if i is not None]

    def render(self, messages: list[ChatMessage]) -> Prompt:
        """Prompt ids; each leading system message but the last ends a stable prefix."""
        text = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False
        )
        ids = self.tokenizer(text, add_special_tokens=False).input_ids
        return Prompt(ids, self._boundaries(text, ids, _stable_parts(messages)))

    def _boundaries(self, text: str, ids: list[int], stable: list[str]) -> list[int]:
        boundaries: list[int] = []
        cursor = 0
        for part in stable:
            found = text.find(part, cursor)
            if found < 0:
                break
            cursor = found + len(part)
            prefix = self.tokenizer(text[:cursor], add_special_tokens=False).input_ids[:-1]
            if len(prefix) >= MIN_PREFIX_TOKENS and ids[: len(prefix)] == prefix:
                boundaries.append(len(prefix))  # minus the last token: it may merge onward
        return boundaries

    def load_adapter(self, name: str, path: Path) -> None:
        from peft import PeftModel

        if not (path / "adapter_config.json").is_file():
            raise InvalidAdapter(f"{path} is not a LoRA adapter (no adapter_config.json).")
        try:
            if not isinstance(self.model, PeftModel):
                self.model = PeftModel.from_pretrained(self.model, str(path), adapter_name=name)
            else:
                if name in self.adapters:
                    self.model.delete_adapter(name)
                self.model.load_adapter(str(path), adapter_name=name)
        except (ValueError, RuntimeError, KeyError) as exc:
            raise InvalidAdapter(f"Adapter {name!r} does not fit this base model: {exc}") from exc
        self.model.eval()
        self.adapters[name] = str(path)
        self.prefix_cache.drop_adapter(name)

    def unload_adapter(self, name: str) -> None:
        if name not in self.adapters:
            raise AdapterNotFound(f"No adapter named {name!r} is loaded.")
        if len(self.adapters) == 1:  # the last one: back to the plain model, LoRA layers gone
            self.model = self.model.unload()
        else:
            self.model.delete_adapter(name)
        del self.adapters[name]
        self.prefix_cache.drop_adapter(name)

    def generate(
        self,
        prompt: Prompt,
        params: SamplingParams,
        adapter: str | None,
        streamer: Any,
        cancel: threading.Event,
    ) -> list[int]:
        """Generated token ids; text goes to the streamer as it is produced."""
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        class _Cancelled(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> bool:
                return cancel.is_set()

        if adapter is not None and adapter not in self.adapters:
            raise AdapterNotFound(f"No adapter named {adapter!r} is loaded.")
        if params.seed is not None:
            torch.manual_seed(params.seed)
        extra = self._adapter_kwargs(adapter)
        sampling = params.temperature > 0
        with torch.inference_mode():
            past = self._prefix_kv(prompt, adapter, extra)
            output = self.model.generate(
                input_ids=torch.tensor([prompt.ids]),
                attention_mask=torch.ones(1, len(prompt.ids), dtype=torch.long),
                past_key_values=past,
                max_new_tokens=params.max_tokens,
                min_new_tokens=params.max_tokens if params.ignore_eos else None,
                do_sample=sampling,
                temperature=params.temperature if sampling else None,
                top_p=params.top_p if sampling else None,
                top_k=None,
                eos_token_id=self.stop_ids,
                pad_token_id=self.tokenizer.pad_token_id,
                streamer=streamer,
                stopping_criteria=StoppingCriteriaList([_Cancelled()]),
                **extra,
            )
        return [int(t) for t in output[0, len(prompt.ids) :].tolist()]

    def _adapter_kwargs(self, adapter: str | None) -> dict[str, Any]:
        if not self.adapters:
            return {}
        return {"adapter_names": [adapter or BASE]}

    def _prefix_kv(self, prompt: Prompt, adapter: str | None, extra: dict[str, Any]) -> Any:
        """The KV cache of the longest stable prefix, computing and caching missing levels."""
        import torch

        kv, done = None, 0
        for end in reversed(prompt.boundaries):
            kv = self.prefix_cache.get(adapter, prompt.ids[:end])
            if kv is not None:
                done = end
                break
        for end in (b for b in prompt.boundaries if b > done):
            chunk = torch.tensor([prompt.ids[done:end]])
            out = self.model(
                input_ids=chunk, past_key_values=kv, use_cache=True, logits_to_keep=1, **extra
            )
            kv, done = out.past_key_values, end
            self.prefix_cache.put(adapter, prompt.ids[:end], kv)
        return kv


def _stable_parts(messages: list[ChatMessage]) -> list[str]:
    leading = 0
    while leading < len(messages) and messages[leading]["role"] == "system":
        leading += 1
    return [m["content"] for m in messages[: leading - 1]]
