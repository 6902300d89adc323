"""Compute-dtype copies of the 4-bit weights, made once for a run of the static engine instead of on every decode step."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def four_bit_layers(model: Any) -> list[Any]:
    try:
        import bitsandbytes as bnb
    except ImportError:
        return []
    return [module for module in model.modules() if isinstance(module, bnb.nn.Linear4bit)]


def dequantized_bytes(model: Any, dtype: Any) -> int:
    """Memory the compute-dtype copies of every 4-bit layer's weight take."""
    return sum(layer.weight.quant_state.shape.numel() * dtype.itemsize for layer in four_bit_layers(model))


@contextmanager
def dequantized_weights(model: Any, dtype: Any) -> Iterator[int]:
    """Within the block every 4-bit layer multiplies by a compute-dtype copy of its weight, made once.

    bitsandbytes dequantises a 4-bit weight on every call with more than one input row, then
    multiplies in the compute dtype; the copy is the same numbers, made once instead of on each
    decode step. It is freed when the block ends. Yields the copies' size in bytes.
    """
    import bitsandbytes.functional as bnbf
    import torch.nn.functional as F

    layers = four_bit_layers(model)
    total = 0
    try:
        for layer in layers:
            weight = bnbf.dequantize_4bit(layer.weight.data, layer.weight.quant_state).to(dtype)
            bias = layer.bias.to(dtype) if layer.bias is not None else None
            total += weight.numel() * weight.element_size()

            def forward(x: Any, weight: Any = weight, bias: Any = bias) -> Any:
                return F.linear(x.to(weight.dtype), weight, bias).to(x.dtype)

            layer.forward = forward
        yield total
    finally:
        for layer in layers:
            layer.__dict__.pop("forward", None)
