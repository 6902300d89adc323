"""The offline demo's surroundings: embedded checkpoints, a local stand-in for the hosted
deployment served over real HTTP (v0's demo; Phase II's needs none: the gold policy is its teacher), and, only
when LANGFUSE_* are unset, a local Langfuse-compatible receiver that writes what it got to
slm_swap/05_eval/langfuse-local/.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from slm_swap.layout import Layout
from slm_swap.serving.process import start_transformers_serve
from slm_swap.tracing.client import ENV_VARS
from slm_swap.tracing.receiver.server import LangfuseReceiver

DEMO_HOSTED = "smollm2-135m-instruct"
DEMO_SLM = "smollm2-135m-instruct"
DEMO_TEST_ROWS = 8  # one CPU batch of the SLM
DEMO_TRAIN_ROWS = 16
DEMO_MAX_NEW_TOKENS = 128  # the longest gold completion in the first test rows is well under this
# Phase II: every SLM step reads a 3,000 to 6,000 token prompt of tool docs. Three of each took 29 minutes on a
# 2-core CPU shared with other jobs; two of each keep the demo well inside 30 minutes
PHASE2_DEMO_TEST_TASKS = 2
PHASE2_DEMO_TEACHER_TASKS = 2  # of each of train and val
PHASE2_DEMO_MAX_STEPS_PER_TURN = 2  # one acting reply and the closing one
PHASE2_DEMO_MAX_NEW_TOKENS = 64  # a thought and one call of the shortest tasks
PHASE2_DEMO_CLAIMS = (
    "What this demo proves: the Phase II loop runs end to end from a fresh clone (the teacher's trajectories captured "
    "through the harness, verified by BFCL's checker and built into training records with no test scenario, both "
    "arms evaluated, decided, fine-tuned with loss on assistant tokens only, re-evaluated with the trained adapter "
    "applied (--adapter auto), reported), each step skipped when its inputs are unchanged, and one Langfuse span per step.",
    "What it does not prove: anything about a real model. The teacher and the 'hosted' side are the gold policy "
    "(BFCL's ground-truth calls with a fixed labelled thought, not a model, so its rates are the ceiling, not a hosted "
    "model's); the SLM is a 135M checkpoint trained on a handful of trajectories for one epoch; the test tasks are "
    "the shortest of the test split, not a sample of it, and a few tasks give intervals too wide to tell anything apart.",
)


@dataclass(frozen=True)
class DemoEnvironment:
    environ: dict[str, str]
    slm_path: Path
    hosted_identity: dict[str, str]
    langfuse_local_dir: Path | None


@contextlib.contextmanager
def demo_environment(
    repo: Path,
    environ: Mapping[str, str],
    fetch: Callable[[str], int],
    hosted_name: str = DEMO_HOSTED,
    slm_name: str = DEMO_SLM,
    serve_args: tuple[str, ...] = (),
    serve_hosted: bool = True,
) -> Iterator[DemoEnvironment]:
    """The demo's services; `serve_args` go to `transformers serve` (the GPU run passes `--continuous-batching`).
    Without `serve_hosted` no stand-in runs and no AZURE_* variable is set: nothing can reach a hosted model."""
    models, eval_dir = Layout(repo).models_dir, Layout(repo).eval_dir
    for name in dict.fromkeys((hosted_name, slm_name) if serve_hosted else (slm_name,)):
        if fetch(name) != 0:
            raise RuntimeError(f"could not prepare the embedded checkpoint {name} (see the message above)")
    env = {k: v for k, v in environ.items() if not k.startswith("AZURE_")}
    env["HF_HUB_OFFLINE"] = "1"
    with contextlib.ExitStack() as stack:
        local_dir = None
        if not all(environ.get(name) for name in ENV_VARS):
            local_dir = eval_dir / "langfuse-local"
            public, secret = f"pk-lf-demo-{secrets.token_hex(4)}", f"sk-lf-demo-{secrets.token_hex(8)}"
            receiver = stack.enter_context(LangfuseReceiver([(public, secret)], dump_dir=local_dir))
            env.update(LANGFUSE_PUBLIC_KEY=public, LANGFUSE_SECRET_KEY=secret, LANGFUSE_HOST=receiver.url)
            print(
                "LANGFUSE_* are not set: this demo (and only the demo) records its traces in a local "
                f"Langfuse-compatible receiver at {receiver.url}; what it receives is written to {local_dir}/. "
                "Real runs need a Langfuse project.",
                flush=True,
            )
        if not serve_hosted:
            env["SLM_MODEL_PATH"] = str(models / slm_name)
            yield DemoEnvironment(env, models / slm_name, {"model": "gold"}, local_dir)
            return
        print(f"starting the hosted stand-in: transformers serve {models / hosted_name} on 127.0.0.1", flush=True)
        # one CPU thread: OpenMP threads of the server and of the evaluation spin against each other
        # on a small machine and slow both down by an order of magnitude
        server = stack.enter_context(
            start_transformers_serve(
                models / hosted_name, environ=env, cpu_threads=1, log_path=eval_dir / "demo-serve.log", extra_args=serve_args
            )
        )
        # a made-up key: the stand-in ignores it, but the hosted path must see one, as with Azure
        env.update(AZURE_ENDPOINT=server.base_url, AZURE_API_KEY=f"demo-{secrets.token_hex(8)}", SLM_MODEL_PATH=str(models / slm_name))
        env.pop("AZURE_API_VERSION", None)
        yield DemoEnvironment(env, models / slm_name, {"endpoint": f"transformers serve {hosted_name}", "model": hosted_name}, local_dir)
