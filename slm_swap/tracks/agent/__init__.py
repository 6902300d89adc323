"""The agent track's slice: everything particular to multi-turn agent episodes, by layer.

`definition` (its name and metrics, low), `data` (BFCL's multi-turn tasks, the splits, trajectories for training),
`episodes` (environments, sandbox, actions, the episode runner, scoring), `run` (its cases in a pytest run: the
policy per `--model`, the episode pool, records, capture, trace), `report` (its report sections), `loop` (the
Phase II loop) and `track` (its implementation of `slm_swap.tracks.protocol.Track`, on top).
"""
