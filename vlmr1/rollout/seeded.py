"""Sampling where every completion has a seed of its own, for the hf engine.

``generate(do_sample=True)`` draws every row of a batch from one torch random stream, so completion j of a
request depended on which other requests shared its batch and on the batch size. Adaptive scoring generates a
sample's completions a few at a time, beside different samples each round, and needs completion j to be the one
a single call for all k would have made (as vLLM does: choice j of a request is seeded seed + j). Here each row
draws from a counter-based stream (splitmix64 of its seed and the step): one uniform per row and step, inverted
through the row's cumulative distribution after temperature, top-k and top-p (the order of transformers' warpers
and of vLLM). ``generate`` runs greedy over the scores this processor returns: the drawn token alone is finite.
"""

from __future__ import annotations

import torch

_GOLDEN = 0x9E3779B97F4A7C15 - (1 << 64)  # the constants of splitmix64, as signed 64-bit integers
_MIX1 = 0xBF58476D1CE4E5B9 - (1 << 64)
_MIX2 = 0x94D049BB133111EB - (1 << 64)


def _shr(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Logical right shift of int64 (torch's >> keeps the sign)."""
    return (x >> bits) & ((1 << (64 - bits)) - 1)


def _signed(x: int) -> int:
    return (x + (1 << 63)) % (1 << 64) - (1 << 63)


def uniforms(seeds: torch.Tensor, step: int) -> torch.Tensor:
    """One uniform in [0, 1) per seed for this step: splitmix64 of (seed, step), the same on every machine."""
    z = seeds * _GOLDEN + _signed((step + 1) * _GOLDEN)  # int64 arithmetic wraps, as splitmix64's does
    z = (z ^ _shr(z, 30)) * _MIX1
    z = (z ^ _shr(z, 27)) * _MIX2
    z = z ^ _shr(z, 31)
    return _shr(z, 11).to(torch.float64) * 2.0**-53


class SeededSampler:
    """A transformers logits processor: samples each row with its own seed and returns scores that are -inf but at
    the drawn token, so greedy decoding takes it."""

    def __init__(self, seeds: list[int], prompt_length: int, temperature: float, top_k: int, top_p: float):
        self.seeds = torch.tensor(seeds, dtype=torch.int64)
        self.prompt_length = prompt_length
        self.temperature, self.top_k, self.top_p = temperature, top_k, top_p

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        logits = scores.to(torch.float64) / self.temperature
        if self.top_k and self.top_k < logits.shape[-1]:
            kth = torch.topk(logits, self.top_k, dim=-1).values[:, -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        probs = torch.softmax(logits, dim=-1)
        if self.top_p < 1.0:
            ordered, order = torch.sort(probs, dim=-1, descending=True)
            before = torch.cumsum(ordered, dim=-1) - ordered  # mass ahead of each token: keep while < top_p
            ordered = ordered.masked_fill(before >= self.top_p, 0.0)
            probs = torch.zeros_like(probs).scatter_(-1, order, ordered)
        cdf = torch.cumsum(probs, dim=-1)
        u = uniforms(self.seeds.to(scores.device), input_ids.shape[1] - self.prompt_length)
        token = torch.searchsorted(cdf, (u * cdf[:, -1]).unsqueeze(-1), right=True).clamp_(max=cdf.shape[-1] - 1)
        token = torch.where(probs.gather(-1, token) > 0, token, probs.argmax(-1, keepdim=True))  # never a 0-mass one
        return torch.full_like(scores, float("-inf")).scatter_(-1, token, 0.0)
