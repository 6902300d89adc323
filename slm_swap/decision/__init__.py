"""Per track, whether to fine-tune: the rule over two metric files (`rules`) and the run that writes
`decision.json` and its Langfuse event (`run`).
"""
