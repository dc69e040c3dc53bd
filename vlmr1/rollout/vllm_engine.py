"""vLLM offline generation for GPU machines (``pip install -e '.[vllm]'``). Not run on CPU: kept thin, same interface
as ``HFEngine``."""

from __future__ import annotations

import time

from vlmr1.families import Family, family_of_model
from vlmr1.rollout.base import Completion, EngineStats, Request, Sampling


def model_max_len(model: str, cap: int = 8192) -> int:
    """The positions the model has (its text config's ``max_position_embeddings``), at most ``cap``: vLLM refuses
    a ``max_model_len`` beyond the model's (the tiny test models have 4096)."""
    import json
    from pathlib import Path

    config = json.loads((Path(model) / "config.json").read_text())
    text = config.get("text_config") or config
    return min(cap, int(text.get("max_position_embeddings") or config.get("max_position_embeddings") or cap))


class VLLMEngine:
    def __init__(
        self,
        model: str,
        *,
        family: Family | None = None,
        gpu_memory_utilization: float = 0.85,
        max_model_len: int | None = None,
        tensor_parallel_size: int = 1,
    ):
        from vllm import LLM  # the optional extra; imported only when this engine is chosen

        from vlmr1.processors import load_processor

        self.path = str(model)
        self.family = family or family_of_model(model)
        self.processor = load_processor(model, self.family)  # the chat template, same as hf and training
        self.llm = LLM(
            model=str(model),
            limit_mm_per_prompt={"image": 4},
            gpu_memory_utilization=gpu_memory_utilization,
            max_model_len=max_model_len or model_max_len(model),
            tensor_parallel_size=tensor_parallel_size,
            mm_processor_kwargs={"min_pixels": self.family.min_pixels, "max_pixels": self.family.max_pixels},
        )
        self.stats = EngineStats()

    def describe(self) -> dict:
        from vlmr1.rollout.hf import model_hash

        return {"engine": "vllm", "model": self.path, "model_hash": model_hash(self.path)}

    def generate(self, requests: list[Request], sampling: Sampling) -> list[list[Completion]]:
        from vllm import SamplingParams

        params = SamplingParams(
            n=sampling.n,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            max_tokens=sampling.max_new_tokens,
            seed=sampling.seed,
            **sampling.vllm_extras(),
        )
        prompts = [
            {
                "prompt": self.processor.apply_chat_template(r.messages, add_generation_prompt=True, tokenize=False),
                "multi_modal_data": {"image": r.images if len(r.images) > 1 else r.images[0]},
            }
            for r in requests
        ]
        t0 = time.perf_counter()
        results = self.llm.generate(prompts, params, use_tqdm=False)
        self.stats.generate_seconds += time.perf_counter() - t0
        out = [[Completion(o.text, len(o.token_ids)) for o in res.outputs] for res in results]
        self.stats.requests += len(requests)
        self.stats.completions += sum(len(r) for r in out)
        self.stats.tokens += sum(c.n_tokens for r in out for c in r)
        return out
