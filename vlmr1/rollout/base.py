"""What every rollout engine takes and returns."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import ClassVar, Protocol

import pydantic
from pydantic import ConfigDict


@pydantic.dataclasses.dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class Sampling:
    """The sampler, spelled once: scorer configs, flows and evaluation embed it; training maps TRL's names onto it."""

    n: int = 8  # k completions per request
    temperature: float = 1.0  # 0 = greedy (then n identical completions)
    top_p: float = 1.0
    max_new_tokens: int = 256
    seed: int = 0
    top_k: int = 0  # 0 = off, TRL's GRPOConfig default (transformers' generate would otherwise apply 50)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def greedy(cls, max_new_tokens: int = 256) -> Sampling:
        """One completion, temperature 0: evaluation's sampler."""
        return cls(n=1, temperature=0.0, max_new_tokens=max_new_tokens)

    # our name -> TRL GRPOConfig's name: the one place the two spellings meet
    TRL_NAMES: ClassVar[dict[str, str]] = {
        "n": "num_generations",
        "temperature": "temperature",
        "top_p": "top_p",
        "top_k": "top_k",
        "max_new_tokens": "max_completion_length",
    }

    def to_trl(self) -> dict:
        """The GRPOConfig keyword arguments of this sampler (the seed is the trainer's own)."""
        return {trl: getattr(self, ours) for ours, trl in self.TRL_NAMES.items()}

    @classmethod
    def from_trl(cls, config, seed: int = 0) -> Sampling:
        """The sampler of an object with GRPOConfig's attribute names (a GRPOConfig or our TrainConfig)."""
        return cls(**{ours: getattr(config, trl) for ours, trl in cls.TRL_NAMES.items()}, seed=seed)

    def request_seed(self, index: int, seed: int | None = None) -> int:
        """The seed of the first completion of the ``index``-th request of a call (completion j: this + j): the
        request's own where it has one (``Request.seed``), else n apart from its neighbours', so no two completions
        of a call share a random stream."""
        return seed if seed is not None else self.seed + index * self.n

    def vllm_params(self, index: int, image_pad: str, done: int = 0, seed: int | None = None) -> dict:
        """vLLM's request fields (``SamplingParams`` offline, the JSON body of the OpenAI server) for the
        ``index``-th request of a call (``seed``: its ``Request.seed``), ``done`` of its choices already had.

        vLLM seeds choice j with seed + j (``request_seed``). A checkpoint's generation_config would set what a
        request leaves out (Qwen2.5-VL ships top_k=1, repetition_penalty=1.05): top_k (-1 is off there) and
        repetition_penalty are always sent. The image-pad token is forbidden (-inf), as the hf engine's
        ``suppress_tokens`` and TRL do.
        """
        return {
            "n": self.n - done,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": self.top_k or -1,
            "repetition_penalty": 1.0,
            "max_tokens": self.max_new_tokens,
            "seed": self.request_seed(index, seed) + done,
            "bad_words": [image_pad],
        }


@dataclass
class Request:
    """One prompt: original images (PIL; each engine resizes them exactly as the family's processor does) and chat
    messages."""

    images: list
    messages: list[dict]
    # the seed of this call's first completion (completion j: seed + j); None: the call's (``Sampling.request_seed``).
    # Adaptive scoring asks for a sample's completions a few at a time with the seeds one call for all would use.
    seed: int | None = None


@dataclass
class Completion:
    text: str
    n_tokens: int  # generated tokens, the stop token included
    token_ids: list[int] | None = None  # where the engine has them: equivalence between engines is checked on these


@dataclass
class EngineStats:
    """Where the time went: generation vs everything the engine does around it."""

    requests: int = 0
    completions: int = 0
    tokens: int = 0
    generate_seconds: float = 0.0
    extras: dict = field(default_factory=dict)


class Engine(Protocol):
    """What scoring and evaluation call. An engine may also have ``prepare(requests)``: called on a reader thread
    with the requests of a later ``generate`` call, so it can preprocess them while the current call generates."""

    family: "object"
    stats: EngineStats

    def generate(self, requests: list[Request], sampling: Sampling) -> list[list[Completion]]:
        """``sampling.n`` completions for each request, in request order."""
        ...

    def describe(self) -> dict:
        """What identifies the engine's model for a scorer key (path, content hash or revision)."""
        ...
