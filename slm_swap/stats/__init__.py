"""The statistics a swap decision rests on, as pure functions over exact per-row pass/fail flags: the Wilson interval
of one model's pass rate, the paired comparison of two models on the same rows (the gap, its interval, exact
McNemar), the rows a run would need to settle a comparison, and the verdict those intervals support
(`intervals`). No I/O: callers hand in flags or counts and get frozen values back.
"""
