"""The vLLM knob set, spelled once for the offline engine and the managed server: flags, environment, interpreter.

What changes outputs (dtype, context length, the family's resize bounds,
images per prompt) is ``serving()``: both vLLM engines put it in
``describe()``, so it is part of the scorer key, and the offline engine and
the server on the same model and flags share scores. vLLM runs from a venv
of its own (``make vllm``: vLLM pins transformers and fastapi versions that
clash with ours), found by ``vllm_python()``.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import sys
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from vlmr1.families import Family

REPO = Path(__file__).resolve().parents[2]
DEFAULT_VENV = REPO / ".venv-vllm"


class VLLMError(RuntimeError):
    """vLLM could not be found, started or kept running; the message says which and what to do."""


class VLLMOptions(BaseModel):
    """How vLLM runs a model: on CPU the defaults are the ones measured to work (../PLATFORM notes in the README)."""

    model_config = ConfigDict(extra="forbid")

    python: str | None = Field(None, description="the vLLM venv's python; default $VLMR1_VLLM_PYTHON or .venv-vllm")
    dtype: str = Field("float32", description="vLLM downcasts float32 checkpoints to bf16 unless told")
    enforce_eager: bool = Field(True, description="skip torch.compile and graph capture (~40 s of warm-up on CPU)")
    max_model_len: int | None = Field(None, ge=1, description="default: the model's positions, at most 8192")
    max_images: int = Field(1, ge=1, description="limit_mm_per_prompt images (video is always 0)")
    kv_cache_gib: int = Field(1, ge=1, description="CPU: VLLM_CPU_KVCACHE_SPACE (else ~all RAM is reserved)")
    chunked_prefill: bool | None = Field(
        None,
        description="default: off without an NVIDIA GPU, where vLLM 0.32's CPU worker dies on a seeded request whose "
        "prompt is split ('CPU Generator does not use offset'); on with one",
    )
    gpu_memory_utilization: float = Field(0.85, gt=0, le=1, description="GPU only")
    tensor_parallel_size: int = Field(1, ge=1)
    startup_timeout: float = Field(600.0, gt=0, description="seconds to wait for the server's /health")
    extra_args: list[str] = Field(default_factory=list, description="more `vllm serve` flags, passed through")


def model_max_len(model: str, cap: int = 8192) -> int:
    """The positions the model has (its text config's ``max_position_embeddings``), at most ``cap``: vLLM refuses
    a ``max_model_len`` beyond the model's (the tiny test models have 4096)."""
    config = json.loads((Path(model) / "config.json").read_text())
    text = config.get("text_config") or config
    return min(cap, int(text.get("max_position_embeddings") or config.get("max_position_embeddings") or cap))


def serving(model: str, family: Family, opts: VLLMOptions) -> dict:
    """What of vLLM's configuration changes a completion: recorded in the scorer key."""
    return {
        "dtype": opts.dtype,
        "max_model_len": opts.max_model_len or model_max_len(model),
        "mm_processor_kwargs": {"min_pixels": family.min_pixels, "max_pixels": family.max_pixels},
        "limit_mm_per_prompt": {"image": opts.max_images, "video": 0},
    }


@functools.cache
def has_nvidia_gpu() -> bool:
    """Asked once per process (it runs nvidia-smi)."""
    import subprocess

    try:
        return subprocess.run(["nvidia-smi", "-L"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def describe(kind: str, model: str, family: Family, opts: VLLMOptions) -> dict:
    """A vLLM engine's ``describe()``: the scorer key drops ``engine``, so offline and server share scores."""
    from vlmr1.rollout.hf import model_hash

    return {"engine": kind, "model": model, "model_hash": model_hash(model), "vllm": serving(model, family, opts)}


def llm_kwargs(model: str, family: Family, opts: VLLMOptions) -> dict:
    """``vllm.LLM(**...)`` for the offline engine."""
    kw = {
        "model": model,
        **serving(model, family, opts),
        "enforce_eager": opts.enforce_eager,
        "gpu_memory_utilization": opts.gpu_memory_utilization,
        "tensor_parallel_size": opts.tensor_parallel_size,
        "seed": 0,
    }
    chunked = has_nvidia_gpu() if opts.chunked_prefill is None else opts.chunked_prefill
    if not chunked:  # whole prompts only: a batch must then hold the longest one
        kw.update(enable_chunked_prefill=False, max_num_batched_tokens=kw["max_model_len"])
    return kw


def server_args(model: str, family: Family, opts: VLLMOptions, port: int) -> list[str]:
    """``vllm serve`` flags, the same settings as ``llm_kwargs``."""
    kw = llm_kwargs(model, family, opts)
    args = ["--model", model, "--host", "127.0.0.1", "--port", str(port), "--dtype", kw["dtype"]]
    args += ["--max-model-len", str(kw["max_model_len"]), "--seed", "0"]
    args += ["--limit-mm-per-prompt", json.dumps(kw["limit_mm_per_prompt"])]
    args += ["--mm-processor-kwargs", json.dumps(kw["mm_processor_kwargs"])]
    args += ["--gpu-memory-utilization", str(opts.gpu_memory_utilization)]
    args += ["--tensor-parallel-size", str(opts.tensor_parallel_size)]
    if "enable_chunked_prefill" in kw:
        args += ["--no-enable-chunked-prefill", "--max-num-batched-tokens", str(kw["max_num_batched_tokens"])]
    return args + (["--enforce-eager"] if opts.enforce_eager else []) + list(opts.extra_args)


def vllm_env(opts: VLLMOptions, cache_root: Path) -> dict:
    """The environment vLLM needs here: a bounded CPU KV cache, its caches under ``cache_root``, no telemetry."""
    env = dict(os.environ)
    env.setdefault("VLLM_CPU_KVCACHE_SPACE", str(opts.kv_cache_gib))  # integer GiB; empty crashes vLLM
    env.setdefault("VLLM_CACHE_ROOT", str(cache_root))
    env.setdefault("VLLM_NO_USAGE_STATS", "1")
    env.setdefault("DO_NOT_TRACK", "1")
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.pop("PYTHONPATH", None)  # our venv's paths must not leak into vLLM's
    return env


def vllm_python(opts: VLLMOptions) -> str:
    """The interpreter that has vLLM: the option, $VLMR1_VLLM_PYTHON, the repo's .venv-vllm, or this one."""
    for candidate, origin in (
        (opts.python, "engine option python"),
        (os.environ.get("VLMR1_VLLM_PYTHON"), "VLMR1_VLLM_PYTHON"),
    ):
        if candidate:
            found = shutil.which(candidate) or (candidate if Path(candidate).is_file() else None)
            if not found:
                raise VLLMError(f"{origin}: {candidate} is not an interpreter; give the vLLM venv's bin/python")
            return found
    if (DEFAULT_VENV / "bin" / "python").is_file():
        return str(DEFAULT_VENV / "bin" / "python")
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        return sys.executable
    raise VLLMError(
        f"no vLLM found: run `make vllm` (builds {DEFAULT_VENV}), or set VLMR1_VLLM_PYTHON to a python that has vllm"
    )
