"""The models that answer rows, behind one `Model` protocol (`api`; every `--model` is an `Answerer`): hosted with
retries (`hosted`, `retry`) and its connections in one process (`concurrency`, for rows and agent steps alike), the
local SLM (`local_slm`; its loading `slm_loading`, batch sizing `slm_memory`, engines `slm_engines`), checkpoints and
the embedded ones (`checkpoints`, `model_catalog`), `replay`, routing (`routed`), and the answer journal of every
track (`journal`).
"""
