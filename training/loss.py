"""The SFT loss: answer tokens only, the end of turn weighted, logits only where they count.

TRL's own loss sends every position through the output layer; on CPU its fused head scores all
of them. With Gemma's 262k-token vocabulary and our rows (a ~1,200-token prompt, a ~65-token
answer) that is about 95 % of the head's work, and 1.2 GB of logits per example, spent on
positions whose label is -100. Here the backbone runs once and only positions whose next token
is labelled go through the head (transformers' `logits_to_keep`).

The end-of-turn token is one label in ~65 and the base model has never emitted it, so with
equal weights one epoch left its probability near 0.001 and every answer ran to the cap.
`end_of_turn_weight` multiplies that token's loss.
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

    def __call__(
        self, model: Any, inputs: Mapping[str, Any], num_items_in_batch: Any = None
    ) -> LossParts:
        import torch
        import torch.nn.functional as F

        labels = inputs["labels"]
        targets = labels[:, 1:]  # position p predicts token p + 1
        keep = labelled_positions(targets)
        forward = {k: v for k, v in inputs.items() if k != "labels"}
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
