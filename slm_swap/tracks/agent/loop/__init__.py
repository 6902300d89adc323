"""The Phase II loop: capture a teacher's trajectories, build training sets, fine-tune, evaluate and decide per
arm (`phase2`), with its task lists (`tasks`) and its own Langfuse trace (`trace`)."""
