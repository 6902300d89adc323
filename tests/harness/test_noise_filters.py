"""Third-party noise is filtered at its source, never globally: the same text from another module, another
category or another logger still shows; the real imports that raised it stay quiet."""

from __future__ import annotations

import logging
import subprocess
import sys
import warnings

import pytest

from slm_swap.noise import LOG_FILTERS, silence_third_party_noise, warning_filter_lines

JIT = "`torch.jit.script_method` is deprecated. Please switch to `torch.compile` or `torch.export`."
GEMM = "Failed to load CPU gemm_4bit_forward from kernels-community: %s. Please make sure you already `pip install kernels`"


def raised(message: str, category: type[Warning], module: str) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        silence_third_party_noise()
        warnings.warn_explicit(message, category, "file.py", 1, module=module)
    return [str(w.message) for w in caught]


@pytest.mark.parametrize(
    ("message", "category", "module", "shown"),
    [
        (JIT, DeprecationWarning, "torch.jit._script", False),  # the noise itself
        (JIT, DeprecationWarning, "slm_swap.engine.static", True),  # the same text from elsewhere
        (JIT, UserWarning, "torch.jit._script", True),  # another category
        ("`torch.jit.trace` is deprecated", DeprecationWarning, "torch.jit._script", True),  # another message of torch
        ("`gradient_checkpointing` is deprecated and will be removed in v6.", FutureWarning, "transformers.training_args", False),
        ("`gradient_checkpointing_enable` is deprecated and will be removed in v6.", FutureWarning, "transformers.modeling_utils", False),
        ("`is_gradient_checkpointing` is deprecated and will be removed in v6.", FutureWarning, "transformers.modeling_utils", False),
        ("`evaluation_strategy` is deprecated and will be removed in v6.", FutureWarning, "transformers.training_args", True),
    ],
)
def test_only_the_named_warning_is_silenced(message: str, category: type[Warning], module: str, shown: bool) -> None:
    assert bool(raised(message, category, module)) is shown


def test_only_the_named_log_line_is_dropped(caplog: pytest.LogCaptureFixture) -> None:
    silence_third_party_noise()
    (name,) = LOG_FILTERS
    logger = logging.getLogger(name)
    with caplog.at_level(logging.WARNING, logger=name):
        logger.warning(GEMM, "No module named 'kernels'")
        logger.warning("Failed to load CPU gemv_4bit from somewhere else")
    assert [r.getMessage() for r in caplog.records] == ["Failed to load CPU gemv_4bit from somewhere else"]


def test_pytest_lines_name_message_category_and_module() -> None:
    assert "ignore:`torch\\.jit\\.script_method` is deprecated:DeprecationWarning:torch\\.jit\\._script" in warning_filter_lines()


def test_importing_bitsandbytes_after_the_filters_prints_nothing_of_it() -> None:
    code = "from slm_swap.noise import silence_third_party_noise; silence_third_party_noise(); import bitsandbytes"
    done = subprocess.run([sys.executable, "-W", "default", "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "gemm_4bit_forward" not in done.stderr and "script_method" not in done.stderr
