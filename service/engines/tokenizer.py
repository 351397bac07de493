"""One tokenizer per process: the engines and the prompt builder's token counter share it.

Gemma's tokenizer (a 262k-token vocabulary) holds about 290 MB once loaded. A process that
serves the model in-process (the local and OpenVINO engines) and counts prompt tokens held two
copies, and an answer evaluation or a test run that starts several apps held more. Here a
tokenizer is loaded once for each distinct set of tokenizer files (their contents, so the
OpenVINO export's copy of the same files shares too) and lives as long as anything uses it.
"""

from __future__ import annotations

import hashlib
import json
import threading
import weakref
from pathlib import Path
from typing import Any

# what transformers reads to build the tokenizer: the same contents give the same tokenizer
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja")
# merged into the config's special tokens by transformers; the OpenVINO export writes one that
# restates the config's, so only entries that say something else count
SPECIAL_TOKENS_MAP = "special_tokens_map.json"
PLAIN = {"lstrip": False, "rstrip": False, "normalized": False, "single_word": False}

_loaded: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()
_lock = threading.Lock()


def shared_tokenizer(directory: Path) -> Any:
    """transformers' tokenizer for a model folder, loaded once per process for its files."""
    from transformers import AutoTokenizer

    key = _contents_key(directory)
    with _lock:  # engines load in worker threads
        tokenizer = _loaded.get(key)
        if tokenizer is None:
            tokenizer = AutoTokenizer.from_pretrained(str(directory))
            _loaded[key] = tokenizer
        return tokenizer


def _contents_key(directory: Path) -> str:
    digest = hashlib.sha256()
    for name in TOKENIZER_FILES:
        path = directory / name
        if path.is_file():
            digest.update(name.encode())
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    digest.update(json.dumps(_special_tokens_beyond_config(directory), sort_keys=True).encode())
    return digest.hexdigest()


def _special_tokens_beyond_config(directory: Path) -> dict[str, Any]:
    """special_tokens_map.json's entries that the tokenizer config does not already state."""
    path, config_path = directory / SPECIAL_TOKENS_MAP, directory / "tokenizer_config.json"
    if not path.is_file():
        return {}
    config = json.loads(config_path.read_bytes()) if config_path.is_file() else {}
    beyond = {}
    for key, value in json.loads(path.read_bytes()).items():
        token = value if isinstance(value, dict) else {"content": value}
        flags = {k: token.get(k, default) for k, default in PLAIN.items()}
        if config.get(key) != token.get("content") or flags != PLAIN:
            beyond[key] = value
    return beyond
