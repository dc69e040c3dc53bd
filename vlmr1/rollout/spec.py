"""The engine knob set: one pydantic model the CLI, the flows, scoring and evaluation share, with one ``build()``
(over ``make_engine``). vLLM's own knobs are one nested ``VLLMOptions``.

Before this there were two hand-assembled option dicts with different defaults (the CLI's and the flow's).
Sampling knobs are not here: they are ``Sampling`` (one dataclass, TRL's names mapped onto it once in
``training.config``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from vlmr1.rollout.base import Engine
from vlmr1.rollout.vllm_options import VLLMOptions


class EngineSpec(BaseModel):
    """Which engine runs which model, and how; ``build()`` turns it into an engine for the CLI, flows and
    evaluation."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    kind: Literal["hf", "vllm", "vllm-server", "openai"] = "hf"
    model: str = Field(
        "", description="model folder (hf, vllm, vllm-server) or served model name (openai); required to build"
    )
    family: str | None = Field(None, description="model family; default: from the model's config (openai: qwen2_5_vl)")
    batch_size: int = Field(8, ge=1, description="hf: requests per generate call")
    device: str = "cpu"
    dtype: str = "float32"
    base_url: str = Field("http://127.0.0.1:8000/v1", description="openai: the server's URL")
    concurrency: int | None = Field(
        None, ge=1, description="openai (default 8), vllm-server (default 32: vLLM batches what is in flight)"
    )
    vllm: VLLMOptions = Field(default_factory=VLLMOptions, description="vllm, vllm-server: how vLLM runs")
    server_command: list[str] | None = Field(
        None, description="vllm-server: the launcher instead of `VLLM_PYTHON -m vllm.entrypoints.openai.api_server`"
    )

    def build(self) -> Engine:
        from vlmr1.families import get_family
        from vlmr1.rollout import make_engine

        if self.kind == "openai":
            options = {
                "base_url": self.base_url,
                "family": self.family or "qwen2_5_vl",
                "concurrency": self.concurrency or 8,
            }
            return make_engine("openai", self.model, **options)
        options = {"family": get_family(self.family)} if self.family else {}
        if self.kind == "hf":
            options.update(batch_size=self.batch_size, device=self.device, dtype=self.dtype)
        elif self.kind == "vllm":
            options.update(vllm=self.vllm)
        else:
            options.update(vllm=self.vllm, command=self.server_command, concurrency=self.concurrency or 32)
        return make_engine(self.kind, self.model, **options)
