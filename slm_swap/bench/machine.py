"""What a benchmark ran on: the machine in words and the versions of the packages that set its speed."""

from __future__ import annotations

import platform


def versions() -> dict[str, str]:
    import importlib.metadata

    found = {"python": platform.python_version()}
    for package in ("torch", "transformers", "bitsandbytes", "accelerate"):
        found[package] = importlib.metadata.version(package)
    return found


def machine(device: str) -> str:
    import torch

    if device == "cuda":
        return f"{torch.cuda.get_device_name(0)}, {torch.cuda.mem_get_info(0)[1] / 2**30:.0f} GiB"
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads"
