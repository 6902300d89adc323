"""Agent episodes on BFCL's multi-turn tasks: the environments and the dispatch of calls by name
(`environments`), the sandbox process of an episode (`sandbox`, `worker`, `codeact`), parsing the model's
actions (`actions`), the batched episode runner (`episode`), the gold policy (`gold`) and scoring by
BFCL's multi-turn checker (`scoring`).
"""
