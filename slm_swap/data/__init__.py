"""Dataset rows: loading and checking them (`rows`), the sources they come from (`bfcl`, `xlam`, `sources`) and
the deterministic splits (`splits`).
"""
