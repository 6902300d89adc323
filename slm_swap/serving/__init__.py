"""Serving the SLM: merging an adapter (`export`), launching `transformers serve` (`launch`, `process`) and
checking served text against evaluation (`parity`).
"""
