"""The OpenVINO engine's pipelines: one continuous-batching pipeline per LoRA adapter (a lane).

OpenVINO GenAI applies one adapter set to a whole batch, and only inside generate(): a lane has
its adapter applied once when it is built, so every step() it runs uses that adapter.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service.errors import EngineUnavailable, InvalidAdapter


def import_openvino_genai() -> Any:
    """openvino_genai, or an error that names the extra to install."""
    try:
        import openvino_genai
    except ImportError as exc:
        raise EngineUnavailable(
            "The openvino engine needs the `openvino` extra: pip install 'tunedesk[openvino]'."
        ) from exc
    return openvino_genai


def lora_scale(adapter_dir: Path) -> float:
    """PEFT's LoRA scale (alpha / r, or alpha / sqrt(r) with rsLoRA) for OpenVINO's blend alpha.

    OpenVINO reads only the A and B matrices from the safetensors file; PEFT keeps the scale in
    adapter_config.json, so without this an adapter would act at 1x instead of alpha/r."""
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    if config.get("rank_pattern") or config.get("alpha_pattern"):
        raise InvalidAdapter("Per-layer rank_pattern/alpha_pattern adapters are not supported.")
    if config.get("use_dora"):
        raise InvalidAdapter("DoRA adapters are not supported by the openvino engine.")
    rank, alpha = float(config["r"]), float(config["lora_alpha"])
    return alpha / rank**0.5 if config.get("use_rslora") else alpha / rank


class Lane:
    """One continuous-batching pipeline: the base model, or the base model with one adapter."""

    def __init__(self, pipe: Any, adapter: str | None) -> None:
        self.pipe = pipe
        self.adapter = adapter
        self.requests: dict[int, Any] = {}  # request id → the engine's request
        self.retiring = False

    def busy(self) -> bool:
        return bool(self.requests)


@dataclass(frozen=True)
class LaneSpec:
    """What every lane of one engine shares."""

    ov_dir: Path
    batch_size: int
    prefix_caching: bool
    cache_gb: int
    threads: int | None
    weights: str


def build_lane(
    og: Any, spec: LaneSpec, name: str | None, adapter_dir: Path | None, bos_id: int
) -> Lane:
    """A compiled pipeline for the base model (adapter_dir None) or one adapter."""
    scheduler = og.SchedulerConfig()
    scheduler.max_num_seqs = spec.batch_size
    scheduler.max_num_batched_tokens = 2048
    scheduler.dynamic_split_fuse = True
    scheduler.enable_prefix_caching = spec.prefix_caching
    scheduler.cache_size = spec.cache_gb
    properties: dict[str, Any] = {}
    if spec.threads:
        properties["INFERENCE_NUM_THREADS"] = spec.threads
    if spec.weights == "fp32":  # the exact twin of the reference engine (tests, checks)
        properties |= {"INFERENCE_PRECISION_HINT": "f32", "KV_CACHE_PRECISION": "f32"}
    adapters = None
    if adapter_dir is not None:
        adapter = og.Adapter(str(adapter_dir / "adapter_model.safetensors"))
        adapters = og.AdapterConfig(adapter, lora_scale(adapter_dir))
        properties["adapters"] = adapters
    pipe = og.ContinuousBatchingPipeline(str(spec.ov_dir), scheduler, "CPU", properties)
    if adapters is not None:
        # step() never applies adapters (only generate() does): apply this lane's once
        warm = og.GenerationConfig(max_new_tokens=1, adapters=adapters)
        pipe.generate([tensor([[bos_id]])], [warm])
    return Lane(pipe, name)


def tensor(rows: list[list[int]]) -> Any:
    import numpy as np
    import openvino

    return openvino.Tensor(np.array(rows, dtype=np.int64))


def finish_reason(finish: Any, og: Any) -> str | None:
    if finish == og.GenerationFinishReason.LENGTH:
        return "length"
    if finish == og.GenerationFinishReason.STOP:
        return "stop"
    return None
