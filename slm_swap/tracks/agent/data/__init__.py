"""The agent track's data: BFCL's multi-turn tasks (`bfcl_multi_turn`), the committed task splits (`splits`),
trajectories as training records (`trajectories`, `trajectory_build`)."""
