"""Any OpenAI-compatible chat-completions server (``vllm serve``, SGLang, ...): images as data URLs, ``n=k``.

Requests run on a bounded thread pool. Connection errors, timeouts, 429 and
5xx are retried with exponential backoff; any other refusal fails at once
with the status and the server's message. Images are resized on our side
to exactly the size the family's processor produces, so the server's own
resize is a no-op and the box frame is the one scoring assumes.

The body carries vLLM's sampling fields (``Sampling.vllm_params``: the
offline engine sends the same) and asks for each choice's token ids, whose
length is that choice's ``n_tokens`` (other servers leave us
``completion_tokens`` split evenly).
"""

from __future__ import annotations

import base64
import io
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from vlmr1.families import Family, get_family
from vlmr1.rollout.base import Completion, EngineStats, Request, Sampling

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


class EngineError(RuntimeError):
    """The server refused a request, or kept failing after every retry."""


def png_base64(img) -> str:
    """The image as lossless PNG, base64: vLLM sees the pixels the hf engine sees (a JPEG q95 data URL shifted
    log-probs by up to 6e-3 against transformers)."""
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


def data_url(img) -> str:
    return "data:image/png;base64," + png_base64(img)


def openai_messages(messages: list[dict], images: list) -> list[dict]:
    """Our chat messages (image placeholders) with the images filled in as image_url parts."""
    pending = iter(images)
    out = []
    for m in messages:
        content = m["content"]
        if isinstance(content, list):
            content = [
                {"type": "image_url", "image_url": {"url": data_url(next(pending))}} if c["type"] == "image" else c
                for c in content
            ]
        out.append({"role": m["role"], "content": content})
    return out


def decoded(tokenizer, token_ids: list[int]) -> Completion:
    """A completion's text from its token ids with our tokenizer, as TRL decodes vLLM's ids (vLLM's own
    detokenizer drops an incomplete UTF-8 tail that ``batch_decode`` renders as U+FFFD)."""
    return Completion(tokenizer.decode(token_ids, skip_special_tokens=True), len(token_ids), list(token_ids))


class OpenAIEngine:
    def __init__(
        self,
        model: str,
        *,
        base_url: str = "http://127.0.0.1:8000/v1",
        family: Family | str = "qwen2_5_vl",
        api_key: str = "EMPTY",
        concurrency: int = 8,
        timeout: float = 120.0,
        retries: int = 5,
        backoff: float = 0.5,
        request_overrides: dict | None = None,
    ):
        import httpx

        self.model = model
        self.family = get_family(family) if isinstance(family, str) else family
        self.base_url = base_url.rstrip("/")
        self.concurrency, self.retries, self.backoff = concurrency, retries, backoff
        self.client = httpx.Client(timeout=timeout, headers={"Authorization": f"Bearer {api_key}"})
        self.stats = EngineStats(extras={"retries": 0})
        self.health: Callable[[], str | None] | None = None  # a managed server says here why it is gone
        self.tokenizer = None  # when the model is local: texts decoded from token ids, as TRL does
        self.request_overrides = dict(request_overrides or {})  # e.g. min_tokens for benchmarks; in describe()

    def close(self) -> None:
        self.client.close()

    def describe(self) -> dict:
        extra = {"request_overrides": self.request_overrides} if self.request_overrides else {}
        return {"engine": "openai", "model": self.model, "base_url": self.base_url, **extra}

    def _post(self, payload: dict, index: int) -> dict:
        import httpx

        for attempt in range(self.retries + 1):
            try:
                r = self.client.post(f"{self.base_url}/chat/completions", json=payload)
            except (httpx.TransportError, httpx.TimeoutException) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if r.status_code == 200:
                    return r.json()
                problem = f"HTTP {r.status_code}: {r.text[:300]}"
                if r.status_code not in RETRY_STATUS:
                    raise EngineError(f"{self.base_url} refused request {index}: {problem}")
            gone = self.health() if self.health else None
            if gone:
                raise EngineError(f"request {index}: {gone}")
            if attempt == self.retries:
                raise EngineError(
                    f"{self.base_url}: request {index} failed after {self.retries + 1} attempts: {problem}"
                )
            self.stats.extras["retries"] += 1
            time.sleep(min(self.backoff * 2**attempt, 30.0))
        raise AssertionError("unreachable")

    def _one(self, index: int, request: Request, sampling: Sampling) -> list[Completion]:
        images = [img.resize(self.family.resized(*img.size)) for img in request.images]
        messages = openai_messages(request.messages, images)
        out: list[Completion] = []
        while len(out) < sampling.n:  # some servers return fewer choices than n: ask again for the rest
            payload = {
                "model": self.model,
                "messages": messages,
                "return_token_ids": True,
                **sampling.vllm_params(index, self.family.image_pad, done=len(out), seed=request.seed),
                **self.request_overrides,
            }
            body = self._post(payload, index)
            choices = body.get("choices") or []
            if not choices:
                raise EngineError(f"{self.base_url}: request {index} returned no choices: {str(body)[:300]}")
            usage = (body.get("usage") or {}).get("completion_tokens")
            for c in choices:
                text = (c.get("message") or {}).get("content") or ""
                ids = c.get("token_ids")
                if ids is not None:
                    out.append(decoded(self.tokenizer, ids) if self.tokenizer else Completion(text, len(ids), ids))
                else:
                    out.append(Completion(text, int(usage / len(choices)) if usage else len(text.split())))
        return out[: sampling.n]

    def generate(self, requests: list[Request], sampling: Sampling) -> list[list[Completion]]:
        t0 = time.perf_counter()
        with ThreadPoolExecutor(self.concurrency) as pool:
            out = list(pool.map(lambda ir: self._one(ir[0], ir[1], sampling), enumerate(requests)))
        self.stats.generate_seconds += time.perf_counter() - t0
        self.stats.requests += len(requests)
        self.stats.completions += sum(len(r) for r in out)
        self.stats.tokens += sum(c.n_tokens for r in out for c in r)
        return out
