"""Rollout engines: k completions per request from a VLM (hf on CPU/GPU, vllm on GPU, any OpenAI-compatible server).

All three take the same ``Request`` list and ``Sampling`` and return the same
``Completion`` lists, so scoring code never knows which one ran. ``make_engine``
imports only the engine asked for (vllm is an optional extra).
"""

from vlmr1.rollout.base import Completion, Engine, EngineStats, Request, Sampling


def make_engine(kind: str, model: str, **options) -> Engine:
    if kind == "hf":
        from vlmr1.rollout.hf import HFEngine

        return HFEngine(model, **options)
    if kind == "vllm":
        from vlmr1.rollout.vllm_engine import VLLMEngine

        return VLLMEngine(model, **options)
    if kind == "openai":
        from vlmr1.rollout.openai_engine import OpenAIEngine

        return OpenAIEngine(model, **options)
    raise ValueError(f"unknown engine {kind!r}; expected hf, vllm or openai")


__all__ = ["Completion", "Engine", "EngineStats", "Request", "Sampling", "make_engine"]
