"""The local SLM's batched generation engine: the static ragged KV cache engine (`static`, the generation loop),
its batch planning (`planning`), prefill inputs (`prefill`), KV cache and attention function (`cache`), dequantised
weight copies (`dequantize`), Triton decode attention (`decode_attention`) and fused kernels (`fused_kernels`).
"""
