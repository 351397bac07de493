"""The SFT loss: answer tokens only, the end of turn weighted, logits only where they count.

TRL's own loss sends every position through the output layer; on CPU its fused head scores all
of them. With Gemma's 262k-token vocabulary and our rows (a ~1,200-token prompt, a ~65-token
answer) that is about 95 % of the head's work, and 1.2 GB of logits per example, spent on
positions whose label is -100. Here the backbone runs once and only positions whose next token
is labelled go through the head (transformers' `logits_to_keep`).

The end-of-turn token is one label in ~65 and the base model has never emitted it, so with
equal weights one epoch left its probability near 0.001 and every answer ran to the cap.
`end_of_turn_weight` multiplies that token's loss.

`frozen_prompt` (the CPU default) runs the prompt once without a graph and backpropagates
through the answer alone: the prompt's keys and values come from a no-grad pass (the KV cache,
exactly the forward values), and the answer positions attend to them with gradients. The loss
is the same number; what is dropped is the gradient through the prompt positions' own
activations (how the adapter would re-encode the sources), which is ~95 % of a row's positions
and most of a step's time. See bench/train_step.py for what it saves.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

IGNORE = -100


@dataclass(frozen=True)
class LossParts:
    """One batch's loss and what the trainer logs beside it."""

    loss: Any  # a scalar tensor with its graph
    labelled: int  # answer tokens in the batch
    correct: int  # of those, predicted as the top token
    end_of_turn_prob: float | None  # mean p(<end_of_turn>) where it is the label


@dataclass(frozen=True)
class AnswerLoss:
    """Cross-entropy on labelled tokens, computed from the labelled positions' logits alone."""

    end_of_turn_id: int
    end_of_turn_weight: float = 1.0
    frozen_prompt: bool = False

    def __call__(
        self, model: Any, inputs: Mapping[str, Any], num_items_in_batch: Any = None
    ) -> LossParts:
        import torch
        import torch.nn.functional as F

        labels = inputs["labels"]
        targets = labels[:, 1:]  # position p predicts token p + 1
        keep = labelled_positions(targets)
        forward = {k: v for k, v in inputs.items() if k != "labels"}
        if self.frozen_prompt:
            outputs = forward_after_frozen_prompt(model, forward, keep)
        else:
            outputs = model(**forward, use_cache=False, logits_to_keep=keep)
        picked = targets[:, keep]
        mask = picked != IGNORE
        logits = outputs.logits.float()[mask]
        wanted = picked[mask]
        per_token = F.cross_entropy(logits, wanted, reduction="none")
        is_eot = wanted == self.end_of_turn_id
        weights = torch.where(is_eot, self.end_of_turn_weight, 1.0)
        total = num_items_in_batch if num_items_in_batch is not None else mask.sum()
        loss = (per_token * weights).sum() / torch.as_tensor(total).clamp(min=1)
        with torch.no_grad():
            correct = int((logits.argmax(-1) == wanted).sum())
            eot_prob = per_token[is_eot].neg().exp().mean().item() if bool(is_eot.any()) else None
        return LossParts(loss, int(mask.sum()), correct, eot_prob)


def labelled_positions(targets: Any) -> Any:
    """Sequence positions whose next token is labelled in any row (one position at least)."""
    import torch

    keep = (targets != IGNORE).any(dim=0).nonzero().squeeze(1)
    if keep.numel() == 0:  # a batch without answer tokens still needs a graph to backpropagate
        keep = torch.zeros(1, dtype=torch.long, device=targets.device)
    return keep


def forward_after_frozen_prompt(
    model: Any, forward: dict[str, Any], keep: Any, repeats: int = 1
) -> Any:
    """The model's outputs at `keep`, with the positions before the first of them run without
    a graph (their keys and values cached) and only the rest with one.

    Every row's prompt is at least as long as the shortest, so with right padding the split is
    real tokens in every row; the attention mask spans both parts, as in one full forward.
    `repeats` > 1: each run of that many rows shares its prefix, which runs once for them.
    """
    import torch

    split = int(keep[0])
    if split == 0:
        return model(**forward, use_cache=False, logits_to_keep=keep)
    ids, mask = forward["input_ids"], forward.get("attention_mask")
    with torch.no_grad():
        prefix = model(
            input_ids=ids[::repeats, :split],
            attention_mask=None if mask is None else mask[::repeats, :split],
            use_cache=True,
            logits_to_keep=1,
        )
    cache = prefix.cache if hasattr(prefix, "cache") else prefix.past_key_values
    if repeats > 1:
        cache.batch_repeat_interleave(repeats)
    return model(
        input_ids=ids[:, split:],
        attention_mask=mask,
        cache=cache,
        use_cache=True,
        logits_to_keep=keep - split,
    )


def completion_logprobs(model: Any, inputs: Mapping[str, Any], frozen_prompt: bool) -> Any:
    """Each row's summed log-probability of its completion tokens: DPO's policy and reference
    terms, from the completion positions' logits alone.

    Rows are TRL's preference batch: prompt + completion, right-padded, `completion_mask`
    marking the completion, the chosen rows first and the rejected ones (same prompts, same
    order) after them. One pair at a time: the positions whose logits are kept span a batch's
    completions, and across pairs of different prompt lengths that was most of every row (an
    eval batch of 8 pairs held 16 GB of logits). With `frozen_prompt` the prompt runs once
    without a graph, as for SFT, and once for both answers of a pair: its cache is repeated.
    """
    import torch

    rows = inputs["input_ids"].size(0)
    if rows <= 2 or rows % 2:
        return _batch_logprobs(model, inputs, frozen_prompt)
    half = rows // 2
    pairs = [
        _batch_logprobs(model, _rows(inputs, [i, i + half]), frozen_prompt) for i in range(half)
    ]
    stacked = torch.stack(pairs)  # (pairs, 2): chosen, rejected
    return torch.cat([stacked[:, 0], stacked[:, 1]])


def _rows(inputs: Mapping[str, Any], rows: list[int]) -> dict[str, Any]:
    """Those rows of a right-padded batch, the padding they all share cut off."""
    keys = ("input_ids", "attention_mask", "completion_mask")
    picked = {k: inputs[k][rows] for k in keys}
    width = int(picked["attention_mask"].sum(dim=1).max())
    return {k: v[:, :width] for k, v in picked.items()}


def _batch_logprobs(model: Any, inputs: Mapping[str, Any], frozen_prompt: bool) -> Any:
    """completion_logprobs for one batch in one pass (the prefix shared where a pair's is)."""
    import torch
    import torch.nn.functional as F

    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    targets = ids.masked_fill(inputs["completion_mask"] == 0, IGNORE)[:, 1:]
    keep = labelled_positions(targets)
    rows = torch.arange(ids.size(0), device=ids.device)
    if frozen_prompt and _pairs_share_prefix(ids, mask, int(keep[0])):
        # chosen i beside rejected i, so that repeating the prefix cache pairs them up
        rows = rows.view(2, -1).t().reshape(-1)
        forward = {"input_ids": ids[rows], "attention_mask": mask[rows]}
        outputs = forward_after_frozen_prompt(model, forward, keep, repeats=2)
    elif frozen_prompt:
        outputs = forward_after_frozen_prompt(
            model, {"input_ids": ids, "attention_mask": mask}, keep
        )
    else:
        outputs = model(input_ids=ids, attention_mask=mask, use_cache=False, logits_to_keep=keep)
    picked = targets[rows][:, keep]
    logits = outputs.logits.float()
    per_token = -F.cross_entropy(
        logits.reshape(-1, logits.size(-1)),
        picked.reshape(-1),
        ignore_index=IGNORE,
        reduction="none",
    ).view(picked.shape)
    logps = per_token.sum(dim=1)  # ignored positions contribute 0
    return logps[torch.argsort(rows)]  # back in the batch's order


def _pairs_share_prefix(ids: Any, mask: Any, split: int) -> bool:
    """Do row i and row i + n/2 hold the same tokens before `split` (one prompt, two answers)?"""
    if ids.size(0) % 2 or split == 0:
        return False
    chosen, rejected = ids[:, :split].chunk(2), mask[:, :split].chunk(2)
    return bool((chosen[0] == chosen[1]).all() and (rejected[0] == rejected[1]).all())
