"""Dataset rows: loading and checking them (`rows`), the sources they come from (`bfcl`, `xlam`, `sources`) and
the deterministic splits (`splits`); BFCL's multi-turn agent tasks (`bfcl_multi_turn`) and their splits by
scenario (`multi_turn_splits`).
"""
