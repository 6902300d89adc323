"""Pure scoring: an output and a gold completion in, a `RowResult` out (`scorers`); rates and counts over
results (`metrics`); what a row ends with, typed (`outcomes`: `FailureKind`, `ErrorClass`, `RowRecord`). No I/O.
"""
