"""The local SLM's batched generation engine: the static ragged KV cache engine (`static`), its Triton decode
attention (`decode_attention`) and fused kernels (`fused_kernels`).
"""
