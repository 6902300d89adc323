"""Pure scoring: an output and a gold completion in, a `RowResult` out (`scorers`); rates and counts over
results (`metrics`). No I/O.
"""
