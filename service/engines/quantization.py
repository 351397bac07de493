"""Int8 linear layers for CPU decoding, shaped so PEFT can still put LoRA adapters on them.

Decoding on CPU is bound by memory bandwidth: in fp32 the 262k-token output projection alone is
671 MB read per token. fbgemm's dynamic int8 kernels read a quarter of that. torch's own
`quantize_dynamic` modules break PEFT (their `weight` is a method and their state-dict loading
demands keys no adapter file has), so this keeps the packed weights inside an `nn.Linear`
subclass whose `weight` is an empty fp32 placeholder telling PEFT the device and dtype to use.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn


class Int8Linear(nn.Linear):
    """A frozen linear layer with per-channel int8 weights and dynamic int8 activations."""

    def __init__(self, linear: nn.Linear) -> None:
        nn.Module.__init__(self)
        self.in_features = linear.in_features
        self.out_features = linear.out_features
        self._packed = _pack(linear.weight.detach().float(), linear.bias)
        self.weight = nn.Parameter(torch.empty(0), requires_grad=False)
        self.register_parameter("bias", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        y = torch.ops.quantized.linear_dynamic(x.reshape(-1, shape[-1]).float(), self._packed)
        return y.reshape(*shape[:-1], self.out_features).to(x.dtype)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8"


def _pack(weight: torch.Tensor, bias: torch.Tensor | None) -> Any:
    scales = (weight.abs().amax(dim=1) / 127).clamp(min=1e-8).double()
    zero_points = torch.zeros(weight.shape[0], dtype=torch.long)
    with warnings.catch_warnings():  # quantized tensors are deprecated in favour of torchao
        warnings.simplefilter("ignore")
        qweight = torch.quantize_per_channel(weight, scales, zero_points, 0, torch.qint8)
        return torch.ops.quantized.linear_prepack(
            qweight, bias.detach().float() if bias is not None else None
        )


def quantize_linear_layers(model: nn.Module, head_only: bool = False) -> nn.Module:
    """Swap every plain nn.Linear (output projection included) for an Int8Linear, in place;
    with head_only, only the output projection (`lm_head`)."""
    targets = [
        (name, module)
        for name, module in model.named_modules()
        if type(module) is nn.Linear
        and "lora_" not in name
        and (not head_only or name.rpartition(".")[2] == "lm_head")
    ]
    for name, module in targets:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, Int8Linear(module))
    return model
