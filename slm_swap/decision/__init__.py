"""Per track, whether to fine-tune: the paired comparison of two runs' rows (`compare`), the rules and the
verdict over metric files and intervals (`rules`), and the run that writes `decision.json` and its Langfuse
event (`run`).
"""
