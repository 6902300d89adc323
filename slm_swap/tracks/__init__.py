"""Tracks: the kinds of traffic the SLM must take over, each a vertical slice behind one protocol.

A track is `slm_swap.tracks.protocol.Track`: its cases, how a run collects their records, the metric document's
track-specific part, its predictions and trace, the flags the gate and the decision pair two runs on, and its
report section. `rows` (structured output, tool calling: one reply per dataset row) and `agent` (BFCL multi-turn
episodes) are its two implementations; `registry` finds them by name. The harness, the writer, the gate, the
decision and the report call the protocol and never ask which track they hold.

Adding a third track (`tests/tracks/test_toy_track.py` follows these steps with a toy track):
1. A package `slm_swap/tracks/<name>/` with `definition.py`: its name, core metrics, paired checks, reported metrics.
2. `track.py` in it: a class with the members of `Track` and a function `track(name)` that returns it.
3. Its name in `registry.IMPLEMENTATIONS` (the module of `track.py`) and `registry.DEFINITIONS`.
4. `evals/test_<name>.py`: `TRACK = "<name>"`, a test taking its cases' fixture, scoring and recording each case.
5. Its layers in `pyproject.toml`'s import-linter contracts, beside the agent slice's.
Nothing else changes: metric files, predictions, traces, the gate, the decision and the report follow.
"""
