"""The report: its inputs (`inputs`), markdown helpers (`markdown`), values (`cells`), tables (`tables`),
failure examples (`examples`), sections (`sections`), chart (`chart`) and the whole (`build`); the agent track's
runs (`agent`) and, for the Phase II loop, each arm before and after fine-tuning (`agent_arms`)."""
