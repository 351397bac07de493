"""`tunedesk train sft|dpo`: a tiny Gemma 3 learns on CPU, resumes, and both engines serve it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from knowledge.catalog import load_system_prompt
from service.config import SAMPLE_KNOWLEDGE_DIR
from service.engines.base import ChatMessage, SamplingParams, TextDelta
from service.engines.local import LocalEngine
from service.engines.vllm import VLLMEngine
from service.prompting.builder import PromptBuilder
from tests.conftest import SERVED
from training.cli import main
from training.config import ConfigError, load_job
from training.dataset import BuildOptions, build_dataset
from training.prompts import PromptRebuilder
from training.transcripts import Transcript

PAIRS = [
    ("My router shows E5.", "Restart the modem, then the router [1]."),
    ("What does E3 mean?", "No cable in the blue WAN port [1]."),
    ("Camera is offline.", "Press the sync button once [1]."),
    ("Thermostat shows E20.", "Connect a C wire or the adapter [1]."),
]
QUESTION: list[ChatMessage] = [
    {"role": "system", "content": "You are the Halcyon Home support assistant."},
    {"role": "user", "content": "My router shows E5."},
]


def short_transcript(number: int, question: str, answer: str) -> Transcript:
    """A good answer with its recorded prompt, then the same question answered badly and
    corrected by an agent."""
    prompt = [
        {"role": "system", "content": "You are the Halcyon Home support assistant."},
        {"role": "user", "content": question},
    ]
    return Transcript.model_validate(
        {
            "conversation_id": f"c{number}",
            "messages": [
                {"id": f"q{number}", "role": "user", "content": question},
                {
                    "id": f"a{number}",
                    "role": "assistant",
                    "content": answer,
                    "prompt": prompt,
                    "ratings": [{"id": f"r{number}", "rater": "agent", "label": "good"}],
                },
                {"id": f"q{number}b", "role": "user", "content": question + " Still?"},
                {
                    "id": f"a{number}b",
                    "role": "assistant",
                    "content": "Buy a new one.",
                    "prompt": [*prompt[:1], {"role": "user", "content": question + " Still?"}],
                    "ratings": [
                        {
                            "id": f"r{number}b",
                            "rater": "agent",
                            "label": "bad",
                            "corrected_answer": answer,
                        }
                    ],
                },
            ],
        }
    )


def test_overrides_are_typed_and_trl_validates_trainer_settings(tmp_path: Path) -> None:
    job = load_job(
        None,
        ["trainer.eval_strategy=no", "trainer.learning_rate=1e-4", "lora.r=8", "dataset=/d"],
    )
    assert job.trainer == {"eval_strategy": "no", "learning_rate": 1e-4}
    assert job.lora.r == 8 and job.dataset == Path("/d")
    with pytest.raises(ConfigError, match="key=value"):
        load_job(None, ["trainer.max_steps"])
    with pytest.raises(ConfigError, match=r"lora\.r"):
        load_job(None, ["lora.r=0"])
    result = CliRunner().invoke(
        main,
        ["train", "sft", "--dataset", str(tmp_path), "--set", "trainer.no_such_option=1"],
    )
    assert result.exit_code == 2 and "no_such_option" in result.output


async def greedy(engine: LocalEngine | VLLMEngine, adapter: str | None) -> str:
    params = SamplingParams(max_tokens=8)
    events = [e async for e in engine.stream(QUESTION, params, adapter)]
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def training_dataset(root: Path, eval_fraction: float = 0.0) -> Path:
    """Four good answers, and four corrections that are also preference pairs."""
    system = load_system_prompt(SAMPLE_KNOWLEDGE_DIR)
    rebuilder = PromptRebuilder(PromptBuilder(system), [], None)
    items = [short_transcript(i, q, a) for i, (q, a) in enumerate(PAIRS)]
    return build_dataset(items, rebuilder, root, BuildOptions(eval_fraction), {}).directory


@pytest.fixture(scope="module")
def sft_run(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`tunedesk train sft` for 4 steps, then resumed from its checkpoint up to 8."""
    root = tmp_path_factory.mktemp("sft")
    dataset = training_dataset(root / "ds")
    args = [
        "train", "sft", "--dataset", str(dataset), "--model", str(tiny_model_dir),
        "--output-dir", str(root / "run"), "--set", "trainer.learning_rate=1e-2",
        "--set", "trainer.logging_steps=1", "--set", "trainer.eval_strategy=no",
        "--set", "trainer.save_steps=4", "--set", "lora.lora_dropout=0",
        "--set", "trainer.per_device_train_batch_size=8",  # every step sees every example
    ]  # fmt: skip
    first = CliRunner().invoke(main, [*args, "--max-steps", "4"])
    assert first.exit_code == 0, first.output
    resumed = CliRunner().invoke(main, [*args, "--max-steps", "8", "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert "Adapter in" in resumed.output
    return root / "run" / "adapter"


@pytest.mark.slow
async def test_sft_loss_falls_resumes_and_the_adapter_serves_on_both_engines(
    sft_run: Path,
    tiny_model_dir: Path,
    engine_server: str,
) -> None:
    record = json.loads((sft_run / "tunedesk-adapter.json").read_text())
    metrics = record["metrics"]
    assert metrics["steps"] == 8 and metrics["steps_this_run"] == 4  # resumed at step 4
    assert metrics["steps_per_second"] > 0
    assert metrics["last_train_loss"] < metrics["first_train_loss"] - 0.3  # 12.48 → 11.86 here
    assert record["dataset"]["version"] == "v1" and record["seed"] == 42
    assert record["loss"] == {"end_of_turn_weight": 5.0, "frozen_prompt": True}
    assert record["init_adapter"] is None

    local = LocalEngine(tiny_model_dir, weights="fp32")
    await local.start()
    base = await greedy(local, None)
    await local.load_adapter("halcyon", str(sft_run))
    assert await greedy(local, "halcyon") != base
    await local.aclose()

    remote = VLLMEngine(engine_server, SERVED, max_retries=0)
    await remote.start()
    await remote.load_adapter("halcyon", str(sft_run))
    assert await greedy(remote, "halcyon")
    await remote.unload_adapter("halcyon")
    await remote.aclose()


@pytest.mark.slow
async def test_dpo_continues_the_sft_adapter_and_prefers_the_corrections(
    sft_run: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    dataset = sft_run.parents[1] / "ds" / "v1"
    args = [
        "train", "dpo", "--dataset", str(dataset), "--model", str(tiny_model_dir),
        "--init-adapter", str(sft_run), "--output-dir", str(tmp_path), "--max-steps", "3",
        "--set", "trainer.learning_rate=5e-3", "--set", "trainer.logging_steps=1",
        "--set", "trainer.eval_strategy=no", "--set", "trainer.gradient_accumulation_steps=1",
        "--set", "trainer.per_device_train_batch_size=8",  # every step sees every pair
    ]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "adapter" / "tunedesk-adapter.json").read_text())["metrics"]
    assert metrics["first_train_loss"] == pytest.approx(0.6931, abs=1e-3)  # policy = reference
    assert metrics["last_train_loss"] < metrics["first_train_loss"]
    # the answer-only step computes the sigmoid loss and RPO's SFT term, and says so for others
    other = CliRunner().invoke(main, [*args, "--set", "trainer.loss_type=[ipo]"])
    assert other.exit_code == 2 and "loss.frozen_prompt=false" in other.output, other.output
    rpo_dir = tmp_path / "rpo"
    rpo = [*args, "--set", "trainer.loss_type=[sigmoid,sft]", "--output-dir", str(rpo_dir)]
    assert CliRunner().invoke(main, rpo).exit_code == 0
    rpo_record = json.loads((rpo_dir / "adapter" / "tunedesk-adapter.json").read_text())
    assert rpo_record["metrics"]["first_train_loss"] > 0.6931 + 1  # plus the answers' token loss
    # held-out pairs are scored by the same path, one pair at a time, and the run says so
    split = training_dataset(tmp_path / "split", eval_fraction=0.5)
    assert (split / "dpo" / "eval.jsonl").read_text().strip()
    held_out = [*args, "--dataset", str(split), "--output-dir", str(tmp_path / "held-out")]
    held_out += ["--set", "trainer.eval_strategy=steps", "--set", "trainer.eval_steps=1"]
    evaluated = CliRunner().invoke(main, [*held_out, "--max-steps", "1"])
    assert evaluated.exit_code == 0, evaluated.output
    assert "eval at step 1 | loss" in evaluated.output and "pairs won" in evaluated.output
    engine = LocalEngine(tiny_model_dir, weights="fp32")
    await engine.start()
    await engine.load_adapter("halcyon-dpo", str(tmp_path / "adapter"))
    assert await engine.list_adapters() == ["halcyon-dpo"]
    await engine.aclose()


@pytest.mark.gpu
def test_sft_of_the_real_model_on_cuda_learns_and_reports_its_speed(tmp_path: Path) -> None:
    """Gemma 3 270M (the prepared model) on the sample's SFT split, 20 steps in bf16 on CUDA:
    the loss falls and the run records its speed (`tunedesk-adapter.json`: steps/s)."""
    from service.config import Settings

    model = Settings().model.directory
    if not (model / "config.json").is_file():
        pytest.skip(f"no prepared model in {model}: run `tunedesk model prepare`")
    sample = SAMPLE_KNOWLEDGE_DIR / "transcripts" / "rated.jsonl"
    build = ["dataset", "build", "--transcripts", str(sample)]
    build += ["--docs", str(SAMPLE_KNOWLEDGE_DIR / "docs"), "--out", str(tmp_path / "ds")]
    built = CliRunner().invoke(main, build)
    assert built.exit_code == 0, built.output
    args = [
        "train", "sft", "--dataset", str(tmp_path / "ds" / "v1"), "--model", str(model),
        "--output-dir", str(tmp_path / "run"), "--max-steps", "20",
        "--set", "trainer.per_device_train_batch_size=4", "--set", "trainer.logging_steps=1",
        "--set", "trainer.eval_strategy=no", "--set", "trainer.learning_rate=3e-4",
        "--set", "trainer.warmup_steps=2", "--set", "trainer.save_steps=20",
    ]  # fmt: skip
    trained = CliRunner().invoke(main, args)
    assert trained.exit_code == 0, trained.output
    record = json.loads((tmp_path / "run" / "adapter" / "tunedesk-adapter.json").read_text())
    assert record["device"] == "cuda" and record["metrics"]["steps"] == 20
    state = tmp_path / "run" / "checkpoints" / "checkpoint-20" / "trainer_state.json"
    losses = [e["loss"] for e in json.loads(state.read_text())["log_history"] if "loss" in e]
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5  # batches differ: means, not single steps
    print(f"SFT on CUDA: {record['metrics']['steps_per_second']} steps/s of 4 examples")
