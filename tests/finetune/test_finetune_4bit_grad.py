"""LoRA gradients through bitsandbytes' 4-bit CPU path equal those of the dequantized 16-bit model.

Tolerance: relative L2 error of every LoRA gradient at most 1e-4 (both sides compute in
float32; measured about 1e-7). The trap beside it: an eval-mode forward without gradients
repacks the 4-bit weights for `gemv_4bit`, which has no backward; gradients then come out
wrong, and the training path refuses such a model.
"""

from __future__ import annotations

import copy

import pytest
import torch

pytest.importorskip("bitsandbytes")

TOLERANCE = 1e-4


@pytest.fixture()
def pair(tmp_path):
    import bitsandbytes as bnb
    from bitsandbytes.functional import dequantize_4bit
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=128,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )
    LlamaForCausalLM(config).save_pretrained(tmp_path)
    quantization = BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=torch.float32
    )
    nf4 = AutoModelForCausalLM.from_pretrained(tmp_path, quantization_config=quantization, dtype=torch.float32, device_map={"": "cpu"})
    reference = AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.float32)
    layers = dict(reference.named_modules())
    quantized = 0
    for name, module in nf4.named_modules():
        if isinstance(module, bnb.nn.Linear4bit):
            layers[name].weight.data.copy_(dequantize_4bit(module.weight.data, module.weight.quant_state).float())
            quantized += 1
    assert quantized == 14  # 7 linear layers per decoder layer
    # init_lora_weights=False: B is random too, so A's gradients are not trivially zero
    lora = LoraConfig(r=64, lora_alpha=16, lora_dropout=0.0, target_modules="all-linear", init_lora_weights=False, task_type="CAUSAL_LM")
    torch.manual_seed(1)
    nf4 = get_peft_model(nf4, lora)
    torch.manual_seed(1)
    reference = get_peft_model(reference, copy.deepcopy(lora))
    return nf4, reference


def lora_gradients(model, input_ids):
    model.zero_grad()
    # a loss on the logits works for a single token too, where next-token labels would leave nothing
    model(input_ids=input_ids).logits.float().pow(2).mean().backward()
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.requires_grad}


def worst_relative_error(model, reference, input_ids):
    got, want = lora_gradients(model, input_ids), lora_gradients(reference, input_ids)
    assert got.keys() == want.keys() and len(got) == 28
    return max(float((got[k] - want[k]).norm() / want[k].norm()) for k in want)


@pytest.mark.parametrize("shape", [(2, 17), (1, 1)], ids=["batch", "single-token"])
def test_lora_gradients_through_4bit_match_the_dequantized_reference_in_train_mode(pair, shape):
    nf4, reference = pair
    nf4.train()
    reference.train()
    input_ids = torch.randint(0, 128, shape, generator=torch.Generator().manual_seed(7))
    assert worst_relative_error(nf4, reference, input_ids) <= TOLERANCE


def test_an_eval_forward_repacks_the_weights_and_training_refuses_them(pair):
    from slm_swap.finetune.hf import ModelLoadError, check_trainable_4bit

    nf4, reference = pair
    input_ids = torch.randint(0, 128, (2, 17), generator=torch.Generator().manual_seed(7))
    nf4.eval()
    with torch.no_grad():
        nf4(input_ids=input_ids)
    nf4.train()
    reference.train()
    if worst_relative_error(nf4, reference, input_ids) <= TOLERANCE:
        pytest.skip("this CPU has no AVX512-BF16: bitsandbytes keeps the trainable layout")
    with pytest.raises(ModelLoadError, match="repacked for CPU inference"):
        check_trainable_4bit(nf4)
