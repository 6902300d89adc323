"""Dataset rows: loading and checking them (`rows`), the sources they come from (`bfcl`, `xlam`, `sources`) and
the deterministic splits (`splits`). The agent track's tasks are its own (`slm_swap.tracks.agent.data`).
"""
