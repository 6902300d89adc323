"""The models that answer rows, behind one `Model` protocol (`api`): hosted with retries (`hosted`, `retry`) and
its connections in one process (`concurrency`), the local SLM (`local_slm`; its loading `slm_loading`, batch
sizing `slm_memory`, engines `slm_engines`), checkpoints and the embedded ones (`checkpoints`, `model_catalog`),
`replay`, and the answer journal (`journal`).
"""
