"""The agent track in a pytest run: the policy per `--model` (the run's answerer adapted to a step, its replies
journalled), the episodes run up front, each task's record, captured trajectories and the run's trace."""
