"""Benchmarks only, not on the product path: batched generation figures (`generation`) and Phi-4-mini's
tokenizer rebuilt offline (`phi4_tokenizer`).
"""
