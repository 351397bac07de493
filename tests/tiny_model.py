"""A tiny randomly initialised Gemma 3 with the real tokenizer: the real architecture in seconds."""

from __future__ import annotations

import shutil
from pathlib import Path


def build_tiny_gemma(tokenizer_dir: Path, target: Path, seed: int = 0) -> Path:
    """Save a 2-layer, 64-wide Gemma 3 text model next to a copy of the tokenizer."""
    import torch
    from transformers import AutoTokenizer, Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    config = Gemma3TextConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=32,
        max_position_embeddings=4096,
        sliding_window=32,  # small, so tests cross the sliding-window boundary too
        layer_types=["sliding_attention", "full_attention"],
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = Gemma3ForCausalLM(config)
    shutil.rmtree(target, ignore_errors=True)
    model.save_pretrained(str(target))
    tokenizer.save_pretrained(str(target))
    return target


def build_tiny_adapter(model_dir: Path, target: Path, seed: int) -> Path:
    """A LoRA adapter with random (non-zero) weights, so it visibly changes the output."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_pretrained(str(model_dir))
    config = LoraConfig(r=4, lora_alpha=64, target_modules="all-linear", init_lora_weights=False)
    get_peft_model(base, config).save_pretrained(str(target))
    return target
