"""One tokenizer per process: the engines and the token counter share the loaded Gemma
tokenizer (about 290 MB) wherever its files say the same thing, and it is freed with its
last user."""

from __future__ import annotations

import gc
import json
import shutil
from pathlib import Path

from service.engines import tokenizer as shared
from service.engines.tokenizer import shared_tokenizer
from service.prompting.builder import token_counter


def copy_tokenizer(source: Path, target: Path) -> Path:
    target.mkdir(parents=True)
    for path in source.iterdir():
        if "token" in path.name or path.name == "chat_template.jinja":
            shutil.copy(path, target / path.name)
    return target


def test_folders_with_the_same_tokenizer_files_share_one(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    copy = copy_tokenizer(tiny_model_dir, tmp_path / "export")
    config = json.loads((copy / "tokenizer_config.json").read_text())
    # what the OpenVINO export writes beside the config: the same tokens restated
    restated = {"bos_token": {"content": config["bos_token"], "lstrip": False}}
    (copy / "special_tokens_map.json").write_text(json.dumps(restated))
    first = shared_tokenizer(tiny_model_dir)
    assert shared_tokenizer(copy) is first
    count = token_counter(copy)
    assert count("E5 on my router") == len(
        first("E5 on my router", add_special_tokens=False).input_ids
    )
    other = copy_tokenizer(tiny_model_dir, tmp_path / "other")
    (other / "chat_template.jinja").write_text("{{ messages[0]['content'] }}")
    assert shared_tokenizer(other) is not first  # another chat template is another tokenizer
    differs = copy_tokenizer(tiny_model_dir, tmp_path / "differs")
    (differs / "special_tokens_map.json").write_text(json.dumps({"pad_token": "<eos>"}))
    assert shared_tokenizer(differs) is not first


def test_a_tokenizer_is_freed_with_its_last_user(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = copy_tokenizer(tiny_model_dir, tmp_path / "alone")
    (folder / "chat_template.jinja").write_text("{{ 'alone' }}")  # its own key
    count = token_counter(folder)
    key = shared._contents_key(folder)
    assert key in shared._loaded and count("hello") > 0
    del count
    gc.collect()
    assert key not in shared._loaded
