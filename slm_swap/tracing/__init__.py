"""Langfuse: the client and its settings (`client`), sessions that buffer a run's trace (`session`),
evaluation, training and decision traces (`runs`). `receiver/` is the local Langfuse-compatible receiver for
tests and the demo.
"""
