"""One `tools/serve.py` session once the server is up: what it prints, the parity check, the routed endpoint.

The command (`slm_swap/cli/serve.py`) parses flags and starts `transformers serve`; this module does the rest with
plain values: print the plan, compare the first rows with `LocalSLM`, or put the routed endpoint in front.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from slm_swap.files import write_json_atomic
from slm_swap.serving.launch import ServePlan
from slm_swap.serving.process import ServeProcess

PLACEHOLDER_KEY = "unused"  # transformers serve checks no key; the OpenAI client insists on one


def print_plan(plan: ServePlan, server: ServeProcess, vllm: str) -> None:
    source = f"merged checkpoint of {plan.adapter}" if plan.adapter else "base checkpoint (no adapter for this track)"
    print(f"serving {plan.checkpoint} ({source}), {plan.dtype} on {plan.device}, no quantization")
    print(f"base URL: {server.base_url}")
    print(f"model id: {server.model_id}")
    print(f"send with every request: temperature 0, max_tokens {plan.max_tokens} (evaluation's cap)")
    print(f"Mastra client: SLM_BASE_URL={server.base_url} SLM_TRACK={plan.track} SLM_MODEL_PATH={plan.base}")
    print(f"vLLM on GPUs (not installed here): {vllm}", flush=True)


def run_parity(plan: ServePlan, server: ServeProcess, rows: list, timeout_s: float, out: Path) -> int:
    """Ask the server and `LocalSLM` the same rows, write the report to `out`; 0 only when every text matches."""
    from slm_swap.backends.hosted import HostedModel
    from slm_swap.backends.local_slm import LocalSLM
    from slm_swap.serving.parity import check_parity

    served = HostedModel(
        server.base_url, PLACEHOLDER_KEY, model=server.model_id, max_tokens=plan.max_tokens, timeout_s=timeout_s, max_retries=0
    )
    evaluated = LocalSLM(
        plan.base,
        adapter=plan.adapter,
        track=plan.track,
        max_new_tokens=plan.max_tokens,
        quantization="none",
        device=plan.device,
        batch_invariant=True,  # each row's text as it comes alone, which is how the server answers
    )
    try:
        report = check_parity(rows, served, evaluated, plan.describe())
    finally:
        served.close()
        evaluated.close()
    write_json_atomic(out, report.to_record())
    same = sum(row.same for row in report.rows)
    print(f"parity: {same}/{len(report.rows)} rows identical to LocalSLM (quantization none, batch-invariant); report {out}")
    return 0 if report.all_same else 1


def routed_sides(environ: Mapping[str, str], max_tokens: int) -> tuple[Any, Any]:
    """(Langfuse settings, the hosted client) from the environment, checked before the SLM loads."""
    from slm_swap.backends.hosted import HostedModel, hosted_settings_from_env
    from slm_swap.tracing.client import check_connection, settings_from_env

    langfuse = settings_from_env(environ)
    check_connection(langfuse)
    hosted = hosted_settings_from_env(environ)
    model = environ.get("AZURE_MODEL") or None
    return langfuse, HostedModel(hosted.endpoint, hosted.api_key, api_version=hosted.api_version, model=model, max_tokens=max_tokens)


def serve_routed(plan: ServePlan, server: ServeProcess, sides: tuple, port: int | None, timeout_s: float) -> int:
    """The routed endpoint on `port` in front of the served SLM, until the server stops or Ctrl-C."""
    from slm_swap.backends.hosted import HostedModel
    from slm_swap.serving.routed_server import RoutedServer

    langfuse, hosted = sides
    slm = HostedModel(server.base_url, PLACEHOLDER_KEY, model=server.model_id, max_tokens=plan.max_tokens, timeout_s=timeout_s)
    secrets = [key for key in [os.environ.get("AZURE_API_KEY")] if key]
    with RoutedServer(plan.track, slm.answer_messages, hosted.answer_messages, langfuse, secrets, port or 0) as router:
        print(f"routed endpoint: {router.base_url} (SLM first, the hosted deployment when the validator rejects its reply)", flush=True)
        try:
            return server.process.wait()
        except KeyboardInterrupt:
            return 0
