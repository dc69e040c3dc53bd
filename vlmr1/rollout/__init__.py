"""Rollout engines: k completions per request from a VLM: hf (transformers), vllm (offline ``vllm.LLM`` in the vLLM
venv), vllm-server (a vLLM OpenAI server we start and stop), openai (any running OpenAI-compatible server).

All take the same ``Request`` list and ``Sampling`` and return the same
``Completion`` lists, so scoring code never knows which one ran. ``make_engine``
imports only the engine asked for. Engines that hold processes have
``close()``; ``closing(engine)`` calls it when there is one.
"""

import contextlib

from vlmr1.rollout.base import Completion, Engine, EngineStats, Request, Sampling


def make_engine(kind: str, model: str, **options) -> Engine:
    if kind == "hf":
        from vlmr1.rollout.hf import HFEngine

        return HFEngine(model, **options)
    if kind == "vllm":
        from vlmr1.rollout.vllm_engine import VLLMEngine

        return VLLMEngine(model, **options)
    if kind == "vllm-server":
        from vlmr1.rollout.vllm_server import ManagedServerEngine

        return ManagedServerEngine(model, **options)
    if kind == "openai":
        from vlmr1.rollout.openai_engine import OpenAIEngine

        return OpenAIEngine(model, **options)
    raise ValueError(f"unknown engine {kind!r}; expected hf, vllm, vllm-server or openai")


def close_engine(engine: Engine) -> None:
    """Stop the engine's server or worker, if it has one (hf has nothing to stop)."""
    close = getattr(engine, "close", None)
    if close is not None:
        close()


@contextlib.contextmanager
def closing(engine: Engine):
    """``with closing(engine):`` stops the engine's server or worker however the block ends."""
    try:
        yield engine
    finally:
        close_engine(engine)


__all__ = ["close_engine", "closing", "Completion", "Engine", "EngineStats", "Request", "Sampling", "make_engine"]
