"""Benchmarks only, not on the product path: batched generation figures (`generation`), hosted calls in one
process against serial and pytest-xdist (`hosted`), and Phi-4-mini's tokenizer rebuilt offline (`phi4_tokenizer`).
"""
