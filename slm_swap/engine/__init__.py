"""The local SLM's batched generation engine: the static ragged KV cache engine (`static`, the generation loop),
its decode loop's tensors (`decode_state`), batch planning (`planning`), prefill inputs (`prefill`), KV cache and
attention function (`cache`), prompt prefixes kept between calls (`prefix_cache`), dequantised weight copies
(`dequantize`), Triton decode attention (`decode_attention`) and fused kernels (`fused_kernels`).
"""
