"""The fused Triton kernels against the transformers code they replace (needs CUDA and Triton)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("the fused kernels run on CUDA only", allow_module_level=True)
pytest.importorskip("triton")

from transformers import LlamaConfig, LlamaForCausalLM, Phi3Config, Phi3ForCausalLM  # noqa: E402
from transformers.models.llama import modeling_llama  # noqa: E402
from transformers.models.phi3 import modeling_phi3  # noqa: E402

from slm_swap.engine import fused_kernels  # noqa: E402

pytestmark = pytest.mark.gpu
BF16 = torch.bfloat16


def cos_sin(positions, dim):  # type: ignore[no-untyped-def]
    freqs = positions[..., None].float() * (1.0 / (10000 ** (torch.arange(0, dim, 2, device="cuda").float() / dim)))
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos().to(BF16), emb.sin().to(BF16)


@pytest.mark.parametrize(
    ("modeling", "heads", "kv_heads", "dim", "rotary"), [(modeling_phi3, 24, 8, 128, 96), (modeling_llama, 9, 3, 64, 64)]
)
@pytest.mark.parametrize("length", [1, 37])
def test_rotary_is_bit_identical(modeling, heads: int, kv_heads: int, dim: int, rotary: int, length: int) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(length)
    batch = 3
    # As the attention layers make them: views of one projection, (batch, heads, length, dim) with strides.
    qkv = torch.randn(batch, length, heads + 2 * kv_heads, dim, device="cuda", dtype=BF16) * 3
    q, k = qkv[:, :, :heads].transpose(1, 2), qkv[:, :, heads : heads + kv_heads].transpose(1, 2)
    positions = torch.arange(length, device="cuda")[None] + torch.tensor([[0], [500], [4000]], device="cuda")
    cos, sin = cos_sin(positions, rotary)
    want = modeling.apply_rotary_pos_emb(q, k, cos, sin)
    got = fused_kernels.rotary_forward(modeling.apply_rotary_pos_emb)(q, k, cos, sin)
    for a, b in zip(want, got):
        assert a.shape == b.shape and torch.equal(a, b)
    # cos and sin shared by the whole batch (position ids of batch 1) broadcast as in transformers
    want = modeling.apply_rotary_pos_emb(q, k, cos[:1], sin[:1])
    got = fused_kernels.rotary_forward(modeling.apply_rotary_pos_emb)(q, k, cos[:1], sin[:1])
    assert all(torch.equal(a, b) for a, b in zip(want, got))


def test_silu_mul_is_bit_identical_to_both_mlp_forms() -> None:
    torch.manual_seed(0)
    config = Phi3Config(hidden_size=256, intermediate_size=1000, hidden_act="silu")
    phi = modeling_phi3.Phi3MLP(config).to("cuda", BF16)
    llama = modeling_llama.LlamaMLP(LlamaConfig(hidden_size=256, intermediate_size=1000, hidden_act="silu")).to("cuda", BF16)
    x = torch.randn(5, 33, 256, device="cuda", dtype=BF16) * 4
    assert torch.equal(fused_kernels.fused_mlp_forward(phi)(x), phi(x))
    assert torch.equal(fused_kernels.split_mlp_forward(llama)(x), llama(x))


@pytest.mark.parametrize("hidden", [3072, 576, 1000])
def test_rms_norm_matches_within_one_unit_in_the_last_place(hidden: int) -> None:
    torch.manual_seed(hidden)
    norm = modeling_phi3.Phi3RMSNorm(hidden, eps=1e-5).to("cuda", BF16)
    norm.weight.data.normal_()
    x = torch.randn(4, 513, hidden, device="cuda", dtype=BF16) * 5
    want, got = norm(x), fused_kernels.rms_norm(x, norm.weight, norm.variance_epsilon)
    assert got.shape == want.shape and got.dtype == want.dtype
    # Only the order of the sum of squares differs: at most one bf16 step apart, almost always equal.
    step = want.float().abs().clamp(min=2**-126) * 2**-7
    assert ((got.float() - want.float()).abs() <= step).all()
    assert (got == want).float().mean() > 0.999


@pytest.mark.parametrize("family", ["phi3", "llama"])
def test_patched_model_gives_the_same_greedy_tokens_and_is_restored(family: str) -> None:
    torch.manual_seed(1)
    common = dict(vocab_size=500, hidden_size=256, intermediate_size=512, num_hidden_layers=3, num_attention_heads=8, num_key_value_heads=2)
    model = (
        Phi3ForCausalLM(Phi3Config(**common, partial_rotary_factor=0.75, pad_token_id=0))
        if family == "phi3"
        else LlamaForCausalLM(LlamaConfig(**common))
    )
    model = model.to("cuda", BF16).eval()
    ids = torch.randint(1, 500, (4, 50), device="cuda")
    modeling = modeling_phi3 if family == "phi3" else modeling_llama
    original = modeling.apply_rotary_pos_emb
    with torch.inference_mode():
        want = model(input_ids=ids).logits
        with fused_kernels.patched(model, BF16) as done:
            got = model(input_ids=ids).logits
        again = model(input_ids=ids).logits
    assert sorted(done) == ["rms_norm", "rotary", "silu_mul"]
    assert torch.equal(again, want)  # everything put back
    # A random model's logits are near ties; where the top two are further apart than twice the
    # largest change, no change can swap them, so the pick must be the same.
    top = want.float().topk(2, dim=-1).values
    clear = (top[..., 0] - top[..., 1]) > 2 * (got.float() - want.float()).abs().max()
    assert clear.any() and torch.equal(got.argmax(-1)[clear], want.argmax(-1)[clear])
    torch.testing.assert_close(got.float(), want.float(), atol=0.05, rtol=0.05)
    assert modeling.apply_rotary_pos_emb is original and "forward" not in model.model.norm.__dict__


def test_other_families_and_dtypes_are_left_alone() -> None:
    model = Phi3ForCausalLM(
        Phi3Config(vocab_size=100, hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=4, pad_token_id=0)
    ).to("cuda")
    with fused_kernels.patched(model, torch.float32) as done:
        assert done == []
