"""Third-party messages the project triggers and that say nothing to its users, silenced one by one at their
source: each warning by its message, category and the module that raises it, each log line by its logger and
text. Nothing is filtered globally: any other warning or log line of these packages still shows.

- bitsandbytes (CPU, a processor with AVX512-BF16): `Failed to load CPU gemm_4bit_forward from kernels-community`,
  an optional kernel package we do not install; its own fallback is what runs.
- torch: `torch.jit.script_method` deprecation, raised 14 times while `torch.utils.mkldnn` is imported (by bitsandbytes).
- transformers: the `gradient_checkpointing*` deprecation FutureWarnings raised for TRL's defaults and PEFT's use
  of `gradient_checkpointing_enable` and `is_gradient_checkpointing` (loading or training an adapter); the project
  turns checkpointing on or off itself (slm_swap/finetune).
"""

from __future__ import annotations

import logging
import warnings

# (message regex matched at the start, category, module regex): the arguments of warnings.filterwarnings
WARNING_FILTERS: tuple[tuple[str, type[Warning], str], ...] = (
    (r"`torch\.jit\.script_method` is deprecated", DeprecationWarning, r"torch\.jit\._script"),
    (r"`gradient_checkpointing(_kwargs)?` is deprecated", FutureWarning, r"transformers\.training_args"),
    (r"`(gradient_checkpointing_enable|is_gradient_checkpointing)` is deprecated", FutureWarning, r"transformers\.modeling_utils"),
)
# logger name -> the start of the messages dropped from it
LOG_FILTERS: dict[str, str] = {"bitsandbytes.backends.cpu.ops": "Failed to load CPU gemm_4bit_forward from kernels-community"}


class DropMessage(logging.Filter):
    """Drops the records of one logger whose message starts with `prefix`."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


def silence_third_party_noise() -> None:
    """Install the filters in this process (idempotent); call it before the packages load."""
    for message, category, module in WARNING_FILTERS:
        warnings.filterwarnings("ignore", message=message, category=category, module=module)
    for name, prefix in LOG_FILTERS.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, DropMessage) and f.prefix == prefix for f in logger.filters):
            logger.addFilter(DropMessage(prefix))


def warning_filter_lines() -> list[str]:
    """The warning filters as pytest's `filterwarnings` lines: pytest re-applies its own filters around every test."""
    return [f"ignore:{message}:{category.__name__}:{module}" for message, category, module in WARNING_FILTERS]
