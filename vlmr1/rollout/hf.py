"""transformers ``generate``: batched across requests (left padding), one prefill per request, k continuations of it.
The CPU default."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from vlmr1.families import Family, family_of_model
from vlmr1.rollout.base import Completion, EngineStats, Request, Sampling


def model_hash(path: str | Path) -> str:
    """sha256 over the weight and config files: a local model's identity for scorer keys."""
    import hashlib

    from vlmr1.hashing import sha256_file

    files = [f for f in sorted(Path(path).glob("*")) if f.suffix in (".safetensors", ".bin", ".json") and f.is_file()]
    return hashlib.sha256("\n".join(f"{f.name} {sha256_file(f)}" for f in files).encode()).hexdigest()[:16]


def _without_padding(ids: list[int], pad: int) -> list[int]:
    """A generated sequence without the padding ``generate`` appends once it stopped."""
    end = len(ids)
    while end and ids[end - 1] == pad:
        end -= 1
    return ids[:end]


class HFEngine:
    def __init__(
        self,
        model: str,
        *,
        family: Family | None = None,
        batch_size: int = 8,
        device: str = "cpu",
        dtype: str = "float32",
        generation_overrides: dict | None = None,
    ):
        import torch
        from transformers import AutoModelForImageTextToText

        from vlmr1.processors import load_processor

        self.path = str(model)
        self.family = family or family_of_model(model)
        self.batch_size = batch_size
        self.generation_overrides = dict(
            generation_overrides or {}
        )  # e.g. min_new_tokens for benchmarks; part of describe()
        self.device = device
        self.processor = load_processor(model, self.family)
        self.model = AutoModelForImageTextToText.from_pretrained(model, dtype=getattr(torch, dtype)).to(device).eval()
        self.stats = EngineStats()
        self._prepared: dict[tuple, tuple] = {}
        self._lock = threading.Lock()
        self._hash = model_hash(model)

    def describe(self) -> dict:
        extra = {"generation_overrides": self.generation_overrides} if self.generation_overrides else {}
        return {"engine": "hf", "model": self.path, "model_hash": self._hash, **extra}

    def prepare(self, requests: list[Request]) -> None:
        """Preprocess the first batch of a later ``generate(requests)`` now
        (the caller runs this on its reader thread).

        Within a call, batch i+1 is preprocessed while batch i generates; this
        does the same for the first batch of the next call, so a scoring run's
        partitions follow each other without a pause in generation. Entries
        hold their requests, so an id is never reused while it is a key.
        """
        first = requests[: self.batch_size]
        if first:
            inputs = self._inputs(first)
            with self._lock:
                self._prepared[tuple(map(id, first))] = (first, inputs)
                while len(self._prepared) > 2:  # prepared and never generated: forget the oldest
                    self._prepared.pop(next(iter(self._prepared)))

    def _first_inputs(self, pool: ThreadPoolExecutor, requests: list[Request]) -> Future:
        first = requests[: self.batch_size]
        with self._lock:
            hit = self._prepared.pop(tuple(map(id, first)), None)
        if hit is None:
            return pool.submit(self._inputs, first)
        done = Future()
        done.set_result(hit[1])
        return done

    def _inputs(self, batch: list[Request]):
        texts = [
            self.processor.apply_chat_template(r.messages, add_generation_prompt=True, tokenize=False) for r in batch
        ]
        images = [img for r in batch for img in r.images] or None
        return self.processor(text=texts, images=images, return_tensors="pt", padding=True).to(self.device)

    def _generate(self, inputs, sampling: Sampling, seeds: list[int]):
        """One prefill per request, then k sampled continuations of it.

        ``generate(num_return_sequences=k)`` copies every prompt k times
        before the prefill, so the vision tower and the prompt's forward pass
        run k times for the same image. Here the prompts but their last token
        run once; their keys and values are copied k times into a static
        cache sized for the whole generation (a growing cache re-copies
        itself every token), Qwen-VL's M-RoPE offsets (``rope_deltas``) are
        repeated to match, and ``generate`` goes on from that cache
        (transformers' "continue from past key values" path). The tokens are
        those of plain ``generate``: a test checks greedy outputs match.
        """
        import torch
        from transformers import StaticCache

        k = sampling.n
        per_token = [name for name in ("input_ids", "attention_mask", "mm_token_type_ids") if name in inputs]
        length = inputs["input_ids"].shape[1]
        with torch.inference_mode():
            head = {name: (v[:, :-1] if name in per_token else v) for name, v in inputs.items()}
            prefix = self.model(**head, use_cache=True, logits_to_keep=1).past_key_values
            cache = StaticCache(config=self.model.config, max_cache_len=length + sampling.max_new_tokens)
            for src, dst in zip(prefix.layers, cache.layers):
                dst.update(src.keys.repeat_interleave(k, dim=0), src.values.repeat_interleave(k, dim=0))
            del prefix
            inner = self.model.model
            if getattr(inner, "rope_deltas", None) is not None:
                inner.rope_deltas = inner.rope_deltas.repeat_interleave(k, dim=0)
            return self.model.generate(
                **{name: inputs[name].repeat_interleave(k, dim=0) for name in per_token},
                past_key_values=cache,
                generation_config=self._generation_config(sampling),
                logits_processor=self._sampler(seeds, length, sampling),
            )

    @staticmethod
    def _sampler(seeds: list[int], length: int, sampling: Sampling):
        """Each completion drawn with its own seed (``seeded``), or none under greedy decoding."""
        from transformers import LogitsProcessorList

        from vlmr1.rollout.seeded import SeededSampler

        if sampling.temperature <= 0:
            return None
        return LogitsProcessorList(
            [SeededSampler(seeds, length, sampling.temperature, sampling.top_k, sampling.top_p)]
        )

    def _generation_config(self, sampling: Sampling):
        """Built from ``sampling`` alone, as TRL's GRPOTrainer builds its own.

        A checkpoint's generation_config.json is not inherited: Qwen2.5-VL
        ships top_k=1, top_p=0.001 and repetition_penalty=1.05, under which
        k rollouts are near copies and every sample looks zero-variance.
        """
        from transformers import GenerationConfig

        tok = self.processor.tokenizer
        options = {"do_sample": False}  # sampling, where asked, is ``_sampler``'s: one seed per completion
        return GenerationConfig(
            max_new_tokens=sampling.max_new_tokens,
            pad_token_id=tok.pad_token_id,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"),
            suppress_tokens=[self.model.config.image_token_id],
            repetition_penalty=1.0,
            **self.generation_overrides,
            **options,
        )

    def generate(self, requests: list[Request], sampling: Sampling) -> list[list[Completion]]:
        """Batches of ``batch_size`` requests; the next batch is preprocessed on a thread while this one generates."""

        out: list[list[Completion]] = []
        tok = self.processor.tokenizer
        bases = [sampling.request_seed(i, r.seed) for i, r in enumerate(requests)]  # completion j: base + j
        starts = list(range(0, len(requests), self.batch_size))
        with ThreadPoolExecutor(1) as pool:
            pending = self._first_inputs(pool, requests) if starts else None
            for n_batch, start in enumerate(starts):
                batch = requests[start : start + self.batch_size]
                inputs = pending.result()
                if n_batch + 1 < len(starts):
                    nxt = starts[n_batch + 1]
                    pending = pool.submit(self._inputs, requests[nxt : nxt + self.batch_size])
                seeds = [base + j for base in bases[start : start + len(batch)] for j in range(sampling.n)]
                t0 = time.perf_counter()
                ids = self._generate(inputs, sampling, seeds)
                self.stats.generate_seconds += time.perf_counter() - t0
                new = ids[:, inputs["input_ids"].shape[1] :]
                kept = [_without_padding(seq, tok.pad_token_id) for seq in new.tolist()]
                texts_out = tok.batch_decode(kept, skip_special_tokens=True)
                for i in range(len(batch)):
                    row = [
                        Completion(texts_out[i * sampling.n + j], len(ids_j), ids_j)
                        for j, ids_j in enumerate(kept[i * sampling.n : (i + 1) * sampling.n])
                    ]
                    out.append(row)
                    self.stats.tokens += sum(c.n_tokens for c in row)
                self.stats.requests += len(batch)
                self.stats.completions += len(batch) * sampling.n
        return out
