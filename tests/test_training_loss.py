"""The SFT loss on answer positions only: the same loss and gradients as the full-vocabulary
one, the end of turn weighted as configured, DPO's answer log-probabilities the same as a full
forward's, and the progress a long run prints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from service.engines.chat_template import END_OF_TURN
from training.loss import IGNORE, AnswerLoss, completion_logprobs
from training.progress import ProgressReport


@pytest.fixture(scope="module")
def tiny(tiny_model_dir: Path) -> tuple[Any, Any]:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32)
    lora = LoraConfig(task_type="CAUSAL_LM", r=4, target_modules="all-linear", lora_dropout=0)
    return tokenizer, get_peft_model(model, lora)


SHORT = [("E5 on my router?", "Restart the modem [1]."), ("E3?", "Plug in.")]
# prompts longer than the tiny model's 32-token sliding window, so the frozen prompt's cache
# holds a window, not the whole prompt
LONG = [
    (
        "My X1000 router shows E5 on its front panel every morning since the firmware update "
        "last week, the internet light is amber and the Wi-Fi works only for a minute or two. "
        "What does E5 mean and what should I do?",
        "E5 means the router lost its upstream link [2]. Restart the modem, then the router [2].",
    ),
    ("The T2 thermostat says E3 after I changed the batteries. Why is that?", "Replace them [1]."),
]


def batch(tokenizer: Any, pairs: list[tuple[str, str]] = SHORT) -> dict[str, torch.Tensor]:
    """Chat rows of different lengths, right-padded, labelled on the answer only."""
    rows = []
    for question, answer in pairs:
        prompt = [{"role": "user", "content": question}]
        start = len(tokenizer.apply_chat_template(prompt, add_generation_prompt=True)["input_ids"])
        full = tokenizer.apply_chat_template([*prompt, {"role": "assistant", "content": answer}])
        rows.append((full["input_ids"], start))
    width = max(len(ids) for ids, _ in rows)
    input_ids = torch.zeros(len(rows), width, dtype=torch.long)
    attention = torch.zeros_like(input_ids)
    labels = torch.full_like(input_ids, IGNORE)
    for i, (ids, start) in enumerate(rows):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        attention[i, : len(ids)] = 1
        labels[i, start : len(ids)] = torch.tensor(ids[start:])
    return {"input_ids": input_ids, "attention_mask": attention, "labels": labels}


def lora_grads(model: Any) -> list[torch.Tensor]:
    grads = [p.grad.clone() for n, p in model.named_parameters() if "lora_" in n]
    model.zero_grad()
    return grads


def test_answer_loss_equals_the_full_vocabulary_loss_with_its_gradients(
    tiny: tuple[Any, Any],
) -> None:
    tokenizer, model = tiny
    inputs = batch(tokenizer)
    eot = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    expected = model(**inputs).loss  # transformers' own: every position through the head
    expected.backward()
    reference = lora_grads(model)
    parts = AnswerLoss(eot, end_of_turn_weight=1.0)(model, inputs)
    parts.loss.backward()
    assert torch.allclose(parts.loss, expected, atol=1e-5)
    for got, want in zip(lora_grads(model), reference, strict=True):
        assert torch.allclose(got, want, atol=1e-5)
    assert parts.labelled == int((inputs["labels"][:, 1:] != IGNORE).sum())
    assert parts.end_of_turn_prob is not None and 0 < parts.end_of_turn_prob < 1


def test_the_end_of_turn_weighs_as_configured(tiny: tuple[Any, Any]) -> None:
    tokenizer, model = tiny
    inputs = batch(tokenizer)
    eot = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    with torch.no_grad():
        logits = model(**{k: v for k, v in inputs.items() if k != "labels"}).logits[:, :-1]
        targets = inputs["labels"][:, 1:]
        mask = targets != IGNORE
        per_token = torch.nn.functional.cross_entropy(logits[mask], targets[mask], reduction="none")
        weights = torch.where(targets[mask] == eot, 5.0, 1.0)
        assert int((targets[mask] == eot).sum()) == 2  # one end of turn per answer
        weighted = AnswerLoss(eot, end_of_turn_weight=5.0)(model, inputs).loss
    assert torch.allclose(weighted, (per_token * weights).sum() / mask.sum(), atol=1e-5)
    assert weighted > per_token.mean()


@pytest.mark.parametrize("pairs", [SHORT, LONG], ids=["short", "past-the-window"])
def test_a_frozen_prompt_gives_the_same_loss_and_trains_the_adapter(
    tiny: tuple[Any, Any], pairs: list[tuple[str, str]]
) -> None:
    tokenizer, model = tiny
    inputs = batch(tokenizer, pairs)
    eot = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    full = AnswerLoss(eot, 5.0)(model, inputs)
    full.loss.backward()
    full_grads = lora_grads(model)
    frozen = AnswerLoss(eot, 5.0, frozen_prompt=True)(model, inputs)
    frozen.loss.backward()
    frozen_grads = lora_grads(model)
    # the forward values are the same: the prompt's cache is exactly what one pass computes
    assert torch.allclose(frozen.loss, full.loss, atol=1e-5)
    assert (frozen.labelled, frozen.correct) == (full.labelled, full.correct)
    # every adapter weight that learns at all still does (answer positions run through every
    # layer; LoRA's B starts at zero, so its A matrices get no gradient on either path) ...
    learning = [bool(g.abs().sum() > 0) for g in full_grads]
    assert any(learning)
    assert [bool(g.abs().sum() > 0) for g in frozen_grads] == learning
    # ... along nearly the full gradient's direction, without the prompt positions' share
    cosine = torch.nn.functional.cosine_similarity(
        torch.cat([g.flatten() for g in frozen_grads]),
        torch.cat([g.flatten() for g in full_grads]),
        dim=0,
    )
    assert 0.5 < float(cosine) < 1.0


def preference_batch(tokenizer: Any, pairs: list[tuple[str, str, str]]) -> dict[str, Any]:
    """TRL's preference layout: chosen rows, then rejected rows, each prompt + answer."""
    rows = []
    for answer in (1, 2):
        for pair in pairs:
            prompt = [{"role": "user", "content": pair[0]}]
            start = len(
                tokenizer.apply_chat_template(prompt, add_generation_prompt=True)["input_ids"]
            )
            full = tokenizer.apply_chat_template(
                [*prompt, {"role": "assistant", "content": pair[answer]}]
            )
            rows.append((full["input_ids"], start))
    width = max(len(ids) for ids, _ in rows)
    input_ids = torch.zeros(len(rows), width, dtype=torch.long)
    attention = torch.zeros_like(input_ids)
    completion = torch.zeros_like(input_ids)
    for i, (ids, start) in enumerate(rows):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        attention[i, : len(ids)] = 1
        completion[i, start : len(ids)] = 1
    return {"input_ids": input_ids, "attention_mask": attention, "completion_mask": completion}


PAIRS = [
    (LONG[0][0], LONG[0][1], "E5 means the router is overheating. Move it somewhere cooler."),
    ("E3 on the T2?", "Replace the batteries [1].", "Send me your password."),
]


@pytest.mark.parametrize("frozen", [False, True], ids=["answer-only", "frozen-prompt"])
def test_dpo_answer_logprobs_are_a_full_forwards_and_train_the_adapter(
    tiny: tuple[Any, Any], frozen: bool
) -> None:
    tokenizer, model = tiny
    model.eval()  # no dropout: the two paths must see the same network
    inputs = preference_batch(tokenizer, PAIRS)
    with torch.no_grad():
        logits = model(
            input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]
        ).logits
        per_token = (
            torch.log_softmax(logits[:, :-1].float(), dim=-1)
            .gather(-1, inputs["input_ids"][:, 1:].unsqueeze(-1))
            .squeeze(-1)
        )
        expected = (per_token * inputs["completion_mask"][:, 1:]).sum(dim=1)
    got = completion_logprobs(model, inputs, frozen_prompt=frozen)
    assert got.shape == (4,)
    assert torch.allclose(got, expected, atol=1e-4)  # in the batch's order: chosen, then rejected
    (got[:2] - got[2:]).sum().backward()
    assert any(bool(g.abs().sum() > 0) for g in lora_grads(model))
    model.train()


def test_pairs_whose_prompts_differ_are_not_given_a_shared_prefix(tiny: tuple[Any, Any]) -> None:
    tokenizer, model = tiny
    model.eval()
    inputs = preference_batch(tokenizer, PAIRS)
    swapped = {k: torch.cat([v[:2], v[2:].flip(0)]) for k, v in inputs.items()}  # prompts crossed
    with torch.no_grad():
        want = completion_logprobs(model, swapped, frozen_prompt=False)
        got = completion_logprobs(model, swapped, frozen_prompt=True)
    assert torch.allclose(got, want, atol=1e-4)
    model.train()


def test_progress_lines_say_step_speed_and_time_left() -> None:
    lines: list[str] = []
    progress = ProgressReport(lines.append)

    class State:
        global_step = 0
        max_steps = 40

    class Args:
        save_steps = 10
        output_dir = "var/training/sft/checkpoints"

    progress.on_train_begin(Args(), State(), None)
    for step, tokens in [(10, 5000), (20, 10000)]:
        State.global_step = step
        logs = {"loss": 1.5, "mean_token_accuracy": 0.5, "end_of_turn_prob": 0.2}
        progress.on_log(Args(), State(), None, logs=logs | {"num_tokens": tokens})
    assert "Training 40 steps" in lines[0] and "--resume" in lines[0]
    assert lines[1].startswith("step 10/40 | loss 1.500 | accuracy 0.50 | p(end of turn) 0.200")
    assert "tokens/s" in lines[2] and "min left" in lines[2]
    dpo = {"loss": 0.4, "rewards/accuracies": 0.75, "rewards/margins": 1.2}
    progress.on_log(Args(), State(), None, logs=dpo)
    assert "pairs won 0.75 | margin 1.20" in lines[3]
    held_out = {"eval_loss": 0.5, "eval_rewards/accuracies": 0.9, "eval_rewards/margins": 2.0}
    progress.on_log(Args(), State(), None, logs=held_out)
    assert lines[4] == "eval at step 20 | loss 0.500 | pairs won 0.90 | margin 2.00"
