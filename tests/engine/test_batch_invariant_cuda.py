"""Batch-invariant mode on CUDA: packed one-row prefill, tiled linears and norms, the Triton decode kernel (needs CUDA)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("the CUDA path of batch-invariant mode runs on CUDA only", allow_module_level=True)

from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402

from slm_swap.engine.static import StaticGenerator  # noqa: E402

pytestmark = pytest.mark.gpu


def random_model(lora: bool):  # type: ignore[no-untyped-def]
    """SmolLM2-135M's layer shapes (fewer layers), random bf16 weights: picks close enough for batch noise to flip them."""
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=2000,
        hidden_size=576,
        intermediate_size=1536,
        num_hidden_layers=4,
        num_attention_heads=9,
        num_key_value_heads=3,
        head_dim=64,
        pad_token_id=0,
    )
    model = LlamaForCausalLM(config).to("cuda", torch.bfloat16).eval()
    if lora:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=64, lora_alpha=16, target_modules=["q_proj", "v_proj", "down_proj"]))
        for name, weight in model.named_parameters():
            if "lora_B" in name:
                weight.data.normal_(0, 0.02)  # a trained adapter's B is not zero
        model.eval()
    return model


@pytest.mark.parametrize("lora", [False, True])
@pytest.mark.parametrize("graphs", [False, True])
def test_every_row_gets_its_alone_tokens_in_any_batch(lora: bool, graphs: bool) -> None:
    model = random_model(lora)
    generator = torch.Generator().manual_seed(1)
    lengths = torch.randint(1, 600, (48,), generator=generator).tolist()
    prompts = [torch.randint(1, 2000, (n,), generator=generator).tolist() for n in lengths]
    engine = StaticGenerator(model, [1999], 0, use_graphs=graphs, prefill_tokens=4096, batch_invariant=True)
    alone = [engine.generate([prompt], 24, min_new_tokens=24)[0] for prompt in prompts]
    assert engine.generate(prompts, 24, min_new_tokens=24) == alone
    assert engine.generate(prompts[::-1][:17], 24, min_new_tokens=24) == alone[::-1][:17]  # other neighbours, other batch size
