"""The agent track's report sections: its runs, and each arm before and after fine-tuning (the Phase II loop)."""
