"""The models that answer rows, behind one `Model` protocol (`api`): hosted with retries (`hosted`, `retry`),
the local SLM (`local_slm`, `checkpoints`), `replay`, and the answer journal (`journal`).
"""
