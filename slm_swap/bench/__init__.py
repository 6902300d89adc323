"""Benchmarks only, not on the product path: batched generation figures (`generation`), hosted calls in one
process against serial and pytest-xdist (`hosted`), Phi-4-mini's tokenizer rebuilt offline (`phi4_tokenizer`), and the static
engine's prefix reuse through the agent test tasks' gold trajectories (`prefix_reuse`).
"""
