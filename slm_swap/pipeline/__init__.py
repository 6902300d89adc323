"""The pipeline: steps in order with skip-on-same-inputs state (`steps`, `state`) and the offline demo's local
services (`demo`); its file names are in `slm_swap.layout`. The Phase II loop is the agent track's
(`slm_swap.tracks.agent.loop`).
"""
