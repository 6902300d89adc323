"""Fused Triton kernels for the elementwise work of a forward pass, with transformers' rounding (CUDA).

Profiled on one H100 (random-weight Phi-4-mini, a 69,760-token prefill pass, docs/benchmarks.md),
the matrix multiplies run at about 770 TFLOP/s and take half the pass; the other half is
elementwise work that transformers runs as chains of small kernels, each a round trip through
memory: RMSNorm (float32 copy, pow, mean, rsqrt, two multiplies), rotary embeddings (slices, a
negation, two concatenations, three arithmetic ops per tensor) and SwiGLU (a SiLU and a multiply).
Each kernel here does one of these in one pass over memory.

The results are those of the transformers code they replace, rounding step by rounding step: every
intermediate that transformers rounds to bfloat16 is rounded here too, SiLU divides with
correct rounding, and exp / rsqrt come from libdevice, as in PyTorch's own CUDA kernels. Rotary and
SwiGLU agree bit for bit; RMSNorm sums its squares in another order, which can move a result by one
unit in the last place. `patched` swaps them in for the model families whose code they follow.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

try:
    import triton
    import triton.language as tl

    try:
        from triton.language.extra import libdevice
    except ImportError:  # older Triton
        from triton.language.extra.cuda import libdevice
except ImportError:  # CPU installs: the model's own code runs
    triton = None

# Model families whose RMSNorm is `weight * (x32 * rsqrt(mean(x32^2) + eps)).to(dtype)`, whose MLP
# is SiLU-gated and whose `apply_rotary_pos_emb` is rotate-half rotary over the first cos.shape[-1]
# dimensions. Gemma's RMSNorm scales by (1 + weight) in float32, so Gemma is not here.
FAMILIES = ("llama", "mistral", "phi3", "qwen2", "qwen3")
NORM_CLASSES = tuple(f"{name}RMSNorm" for name in ("Llama", "Mistral", "Phi3", "Qwen2", "Qwen3"))
FUSED_MLP_CLASSES = ("Phi3MLP",)  # one gate_up_proj, split in halves: gate first
SPLIT_MLP_CLASSES = ("LlamaMLP", "MistralMLP", "Qwen2MLP", "Qwen3MLP")  # gate_proj and up_proj


def available(device: Any) -> bool:
    return triton is not None and device.type == "cuda"


if triton is not None:

    @triton.jit
    def _bf16(x):
        """float32 rounded to the nearest bfloat16 (ties to even), kept in float32.

        Done on the bits: a cast there and back may be folded away, or a multiply and add fused
        across it, and either would skip a rounding transformers does.
        """
        bits = x.to(tl.uint32, bitcast=True)
        bits = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) << 16
        return bits.to(tl.float32, bitcast=True)

    @triton.jit
    def _rms_norm_kernel(X, W, O, sx, so, n, inverse_n, eps, BLOCK: tl.constexpr):
        row = tl.program_id(0)
        cols = tl.arange(0, BLOCK)
        inside = cols < n
        x = tl.load(X + row * sx + cols, mask=inside, other=0.0).to(tl.float32)
        variance = tl.sum(x * x, axis=0) * inverse_n  # as PyTorch's mean: the sum times 1/n
        normed = _bf16(x * libdevice.rsqrt(variance + eps))
        w = tl.load(W + cols, mask=inside, other=0.0)
        tl.store(O + row * so + cols, _bf16(w.to(tl.float32) * normed).to(O.dtype.element_ty), mask=inside)

    @triton.jit
    def _silu_mul_kernel(G, U, O, sg, su, so, n, BLOCK: tl.constexpr):
        row = tl.program_id(0)
        cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
        inside = cols < n
        g = tl.load(G + row * sg + cols, mask=inside, other=0.0).to(tl.float32)
        u = tl.load(U + row * su + cols, mask=inside, other=0.0)
        act = _bf16(tl.div_rn(g, 1.0 + libdevice.exp(-g)))
        tl.store(O + row * so + cols, _bf16(u.to(tl.float32) * act).to(O.dtype.element_ty), mask=inside)

    @triton.jit
    def _rotary_kernel(
        X, C, S, O,
        sx_b, sx_h, sx_l, so_b, so_h, so_l, sc_b, sc_l,
        length, heads, dim, rotary,
        HEADS: tl.constexpr, DIM: tl.constexpr,
    ):  # fmt: skip
        token = tl.program_id(0)
        b = token // length
        pos = token % length
        h = tl.arange(0, HEADS)[:, None]
        d = tl.arange(0, DIM)[None, :]
        half = rotary // 2
        rotated = d < rotary
        partner = tl.where(d < half, d + half, d - half)
        keep = (h < heads) & (d < dim)
        x_base = X + b * sx_b + pos * sx_l + h * sx_h
        x = tl.load(x_base + d, mask=keep, other=0.0)
        other = tl.load(x_base + partner, mask=keep & rotated, other=0.0).to(tl.float32)
        other = tl.where(d < half, -other, other)  # rotate_half: (-x2, x1)
        c = tl.load(C + b * sc_b + pos * sc_l + d, mask=rotated, other=0.0).to(tl.float32)
        s = tl.load(S + b * sc_b + pos * sc_l + d, mask=rotated, other=0.0).to(tl.float32)
        first = _bf16(x.to(tl.float32) * c)
        second = _bf16(other * s)
        out = tl.where(rotated, _bf16(first + second).to(O.dtype.element_ty), x)
        tl.store(O + b * so_b + pos * so_l + h * so_h + d, out, mask=keep)


def rms_norm(x: Any, weight: Any, eps: float) -> Any:
    """`weight * (x32 * rsqrt(mean(x32**2) + eps)).to(x.dtype)` over the last dimension, weight in x's dtype."""
    import torch

    n = x.shape[-1]
    rows = x.reshape(-1, n)
    if rows.stride(-1) != 1:
        rows = rows.contiguous()
    out = torch.empty(rows.shape, dtype=x.dtype, device=x.device)
    _rms_norm_kernel[(rows.shape[0],)](rows, weight, out, rows.stride(0), out.stride(0), n, 1.0 / n, eps, BLOCK=triton.next_power_of_2(n))
    return out.view(x.shape)


def silu_mul(gate: Any, up: Any) -> Any:
    """`up * silu(gate)`, both rounded to the dtype as transformers' two kernels round them; last dimensions contiguous."""
    import torch

    n = gate.shape[-1]
    g, u = gate.reshape(-1, n), up.reshape(-1, n)
    if g.stride(-1) != 1 or u.stride(-1) != 1:
        raise ValueError("silu_mul needs the last dimension contiguous")
    out = torch.empty(g.shape, dtype=gate.dtype, device=gate.device)
    block = 1024
    _silu_mul_kernel[(g.shape[0], triton.cdiv(n, block))](g, u, out, g.stride(0), u.stride(0), out.stride(0), n, BLOCK=block)
    return out.view(gate.shape)


def rotary(x: Any, cos: Any, sin: Any) -> Any:
    """Rotate-half rotary on x (batch, heads, length, dim) over the first cos.shape[-1] dimensions; the rest pass through.

    cos and sin are (batch, length, rotary dims). The result keeps x's memory layout.
    """
    import torch

    batch, heads, length, dim = x.shape
    if x.stride(-1) != 1 or cos.stride(-1) != 1 or sin.stride() != cos.stride():
        raise ValueError("rotary needs x, cos and sin contiguous in their last dimension, cos and sin alike")
    out = torch.empty_like(x)
    cos_b = cos.stride(0) if cos.shape[0] > 1 else 0
    _rotary_kernel[(batch * length,)](
        x, cos, sin, out,
        x.stride(0), x.stride(1), x.stride(2), out.stride(0), out.stride(1), out.stride(2), cos_b, cos.stride(1),
        length, heads, dim, cos.shape[-1],
        HEADS=triton.next_power_of_2(heads), DIM=triton.next_power_of_2(dim),
    )  # fmt: skip
    return out


def rotary_forward(original: Any) -> Any:
    """transformers' `apply_rotary_pos_emb`, fused for bfloat16 (batch, heads, length, dim) tensors; `original` otherwise."""

    import torch

    def apply_rotary_pos_emb(q: Any, k: Any, cos: Any, sin: Any, unsqueeze_dim: int = 1) -> tuple[Any, Any]:
        fits = unsqueeze_dim == 1 and q.dim() == 4 and cos.dim() == 3 and q.dtype == k.dtype == cos.dtype == sin.dtype == torch.bfloat16
        if not fits or q.stride(-1) != 1 or k.stride(-1) != 1 or cos.stride(-1) != 1 or sin.stride() != cos.stride():
            return original(q, k, cos, sin, unsqueeze_dim)
        return rotary(q, cos, sin), rotary(k, cos, sin)

    return apply_rotary_pos_emb


def is_silu(activation: Any) -> bool:
    import torch
    from transformers.activations import SiLUActivation

    return isinstance(activation, (torch.nn.SiLU, SiLUActivation))


def fused_mlp_forward(module: Any) -> Any:
    def forward(hidden_states: Any) -> Any:
        gate, up = module.gate_up_proj(hidden_states).chunk(2, dim=-1)
        return module.down_proj(silu_mul(gate, up))

    return forward


def split_mlp_forward(module: Any) -> Any:
    def forward(x: Any) -> Any:
        return module.down_proj(silu_mul(module.gate_proj(x), module.up_proj(x)))

    return forward


def norm_forward(module: Any) -> Any:
    def forward(hidden_states: Any) -> Any:
        return rms_norm(hidden_states, module.weight, module.variance_epsilon)

    return forward


@contextmanager
def patched(model: Any, dtype: Any) -> Iterator[list[str]]:
    """Within the block the model's RMSNorms, SiLU MLPs and rotary embeddings run the fused kernels.

    Only for the families in FAMILIES, on CUDA with Triton, with bfloat16 compute (the kernels
    round their intermediates to bfloat16) that the norms' weights share. Yields what was
    patched ("rms_norm", "silu_mul", "rotary"); nothing on other models or devices.
    """
    import torch

    done: list[str] = []
    if not available(model.device) or dtype != torch.bfloat16:
        yield done
        return
    module_name = type(getattr(model, "get_base_model", lambda: model)()).__module__
    modeling = sys.modules.get(module_name)
    family = module_name.rsplit(".modeling_", 1)[-1] if ".modeling_" in module_name else ""
    if family not in FAMILIES or modeling is None:
        yield done
        return
    with ExitStack() as stack:
        swapped: list[Any] = []
        stack.callback(lambda: [module.__dict__.pop("forward", None) for module in swapped])
        for module in model.modules():
            name = type(module).__name__
            if name in NORM_CLASSES and module.weight.dtype == dtype:
                module.forward = norm_forward(module)
            elif name in FUSED_MLP_CLASSES and is_silu(module.activation_fn):
                module.forward = fused_mlp_forward(module)
            elif name in SPLIT_MLP_CLASSES and is_silu(module.act_fn):
                module.forward = split_mlp_forward(module)
            else:
                continue
            swapped.append(module)
            kind = "rms_norm" if name in NORM_CLASSES else "silu_mul"
            if kind not in done:
                done.append(kind)
        original = getattr(modeling, "apply_rotary_pos_emb", None)
        if original is not None:
            modeling.apply_rotary_pos_emb = rotary_forward(original)
            stack.callback(setattr, modeling, "apply_rotary_pos_emb", original)
            done.append("rotary")
        yield done
