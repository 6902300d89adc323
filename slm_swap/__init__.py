"""SLM Swap: can a local small language model replace a hosted LLM for this job?"""

__version__ = "0.1.0"
