"""transformers ``generate``: batched across requests, ``num_return_sequences=k``, left padding. The CPU default."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from vlmr1.families import Family, family_of_model
from vlmr1.rollout.base import Completion, EngineStats, Request, Sampling


def model_hash(path: str | Path) -> str:
    """sha256 over the weight and config files: a local model's identity for scorer keys."""
    import hashlib

    from vlmr1.hashing import sha256_file

    files = [f for f in sorted(Path(path).glob("*")) if f.suffix in (".safetensors", ".bin", ".json") and f.is_file()]
    return hashlib.sha256("\n".join(f"{f.name} {sha256_file(f)}" for f in files).encode()).hexdigest()[:16]


class HFEngine:
    def __init__(self, model: str, *, family: Family | None = None, batch_size: int = 8, device: str = "cpu", dtype: str = "float32"):
        import torch
        from transformers import AutoModelForImageTextToText

        from vlmr1.processors import load_processor

        self.path = str(model)
        self.family = family or family_of_model(model)
        self.batch_size = batch_size
        self.device = device
        self.processor = load_processor(model, self.family)
        self.model = AutoModelForImageTextToText.from_pretrained(model, dtype=getattr(torch, dtype)).to(device).eval()
        self.stats = EngineStats()
        self._hash = model_hash(model)

    def describe(self) -> dict:
        return {"engine": "hf", "model": self.path, "model_hash": self._hash}

    def _inputs(self, batch: list[Request]):
        texts = [self.processor.apply_chat_template(r.messages, add_generation_prompt=True, tokenize=False) for r in batch]
        images = [img for r in batch for img in r.images] or None
        return self.processor(text=texts, images=images, return_tensors="pt", padding=True).to(self.device)

    def generate(self, requests: list[Request], sampling: Sampling) -> list[list[Completion]]:
        """Batches of ``batch_size`` requests; the next batch is preprocessed on a thread while this one generates."""
        import torch

        out: list[list[Completion]] = []
        tok = self.processor.tokenizer
        starts = list(range(0, len(requests), self.batch_size))
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(self._inputs, requests[0:self.batch_size]) if starts else None
            for n_batch, start in enumerate(starts):
                batch = requests[start:start + self.batch_size]
                inputs = pending.result()
                if n_batch + 1 < len(starts):
                    nxt = starts[n_batch + 1]
                    pending = pool.submit(self._inputs, requests[nxt:nxt + self.batch_size])
                greedy = sampling.temperature <= 0
                torch.manual_seed(sampling.seed + start)
                t0 = time.perf_counter()
                with torch.inference_mode():
                    ids = self.model.generate(
                        **inputs, max_new_tokens=sampling.max_new_tokens, num_return_sequences=sampling.n, do_sample=not greedy,
                        temperature=None if greedy else sampling.temperature, top_p=None if greedy else sampling.top_p,
                        pad_token_id=tok.pad_token_id, eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"),
                    )
                self.stats.generate_seconds += time.perf_counter() - t0
                new = ids[:, inputs["input_ids"].shape[1]:]
                lengths = (new != tok.pad_token_id).sum(dim=1).tolist()
                texts_out = tok.batch_decode(new, skip_special_tokens=True)
                for i in range(len(batch)):
                    row = [Completion(texts_out[i * sampling.n + j], int(lengths[i * sampling.n + j])) for j in range(sampling.n)]
                    out.append(row)
                    self.stats.tokens += sum(c.n_tokens for c in row)
                self.stats.requests += len(batch)
                self.stats.completions += len(batch) * sampling.n
        return out
