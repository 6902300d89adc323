"""QLoRA fine-tuning of a marked track: settings (`config`), tokenised rows and packing (`data`), refusal rules
(`guard`), the PEFT and Unsloth backends (`hf`, `unsloth_backend`), TRL's trainer (`trainer`), checkpoints and
resuming (`resume`), the manifest (`manifest`) and the run (`run`).
"""
