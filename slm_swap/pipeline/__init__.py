"""The pipeline: steps in order with skip-on-same-inputs state (`steps`, `state`) and the offline demo's local
services (`demo`).
"""
