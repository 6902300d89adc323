"""The pipeline: steps in order with skip-on-same-inputs state (`steps`, `state`), the offline demo's local
services (`demo`), and the Phase II agent loop (`phase2`) with its task lists (`agent_tasks`) and Langfuse
trace (`loop_trace`); its file names are in `slm_swap.layout`.
"""
