"""Partial swaps, evaluated offline: what share of a track's traffic the SLM can serve behind the validator, with the
hosted model answering what the validator rejects, from two evaluation runs already on disk (`tools/route.py`).
The validator is `slm_swap.validation`; the routed model that runs it live is `slm_swap.backends.routed`.
"""
