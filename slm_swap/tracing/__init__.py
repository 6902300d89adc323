"""Langfuse: the client and its settings (`client`), sessions that buffer a run's trace (`session`), the one trace
recorder every trace goes through (`recorder`: a tree of spans and scores, delivered or a loud error), and what an
evaluation, training, decision or routing run puts in its trace (`runs`). `receiver/` is the local
Langfuse-compatible receiver for tests and the demo.
"""
