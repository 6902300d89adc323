"""QLoRA fine-tuning of a marked track: settings (`config`), tokenised rows and packing (`data`), refusal rules
(`guard`), the PEFT and Unsloth backends (`hf`, `unsloth_backend`), the training loop (`loop`), the manifest
(`manifest`) and the run (`run`).
"""
