"""A vLLM OpenAI server we start, wait for, score through and always stop, like TRL's ``vllm-serve``.

``VLLMServer`` runs ``python -m vllm.entrypoints.openai.api_server`` from the
vLLM venv (or any command given) under a keeper (``vlmr1.rollout.keeper``):
no vLLM process outlives us, on ``close()``, on an exception, or on SIGKILL
of the scorer. ``ManagedServerEngine`` is the ``openai`` engine pointed at
it, which also asks the server process whether it is still alive before
retrying a failed request, so a server that dies mid-run is reported at once
with the tail of its log instead of after every retry.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from vlmr1.families import Family, family_of_model
from vlmr1.ports import free_port
from vlmr1.rollout.keeper import Kept
from vlmr1.rollout.openai_engine import OpenAIEngine
from vlmr1.rollout.vllm_options import VLLMError, VLLMOptions, describe, server_args, vllm_env, vllm_python


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class VLLMServer:
    """One vLLM server process group for one model; a context manager."""

    def __init__(
        self,
        model: str,
        family: Family,
        opts: VLLMOptions,
        *,
        command: list[str] | None = None,
        work_dir: str | Path | None = None,
    ):
        self.model, self.family, self.opts = model, family, opts
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.dir = Path(work_dir or tempfile.mkdtemp(prefix="vlmr1-vllm-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self._own_dir, self.failed = work_dir is None, False  # a failed server's log is kept for the user
        self.log = self.dir / f"server-{self.port}.log"
        launcher = command or [vllm_python(opts), "-m", "vllm.entrypoints.openai.api_server"]
        self.command = [*launcher, *server_args(model, family, opts, self.port)]
        self.kept: Kept | None = None
        self.startup_seconds: float | None = None

    def start(self) -> VLLMServer:
        import httpx

        t0 = time.perf_counter()
        with open(self.log, "ab") as log:
            self.kept = Kept(self.command, env=vllm_env(self.opts, self.dir / "cache"), stdout=log, stderr=log)
        deadline = t0 + self.opts.startup_timeout
        while time.perf_counter() < deadline:
            problem = self.problem()
            if problem:
                self.close()
                raise VLLMError(problem)
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=2.0).status_code == 200:
                    self.startup_seconds = time.perf_counter() - t0
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.failed = True
        self.close()
        waited = f"{self.opts.startup_timeout:.0f} s"
        raise VLLMError(f"vLLM server for {self.model} not ready after {waited}; log {self.log}")

    def problem(self) -> str | None:
        """None while the server runs; else one line saying it exited, with its log's tail below."""
        code = self.kept.poll() if self.kept else None
        if code is None:
            return None
        self.failed = True
        return f"vLLM server for {self.model} exited with status {code} (log {self.log}); last lines:\n" + log_tail(
            self.log
        )

    def close(self) -> None:
        if self.kept is not None:
            self.kept.stop()
        if self._own_dir and not self.failed:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> VLLMServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()


class ManagedServerEngine(OpenAIEngine):
    """The ``vllm-server`` engine: starts a server for a local model, scores through it, stops it on ``close()``."""

    def __init__(
        self,
        model: str,
        *,
        family: Family | None = None,
        vllm: VLLMOptions | None = None,
        command: list[str] | None = None,
        concurrency: int = 32,
        work_dir: str | Path | None = None,
        request_overrides: dict | None = None,
    ):
        from vlmr1.processors import load_processor

        family = family or family_of_model(model)
        opts = vllm or VLLMOptions()
        extra = {"request_overrides": dict(request_overrides)} if request_overrides else {}
        self._describe = describe("vllm-server", str(model), family, opts) | extra
        tokenizer = load_processor(model, family).tokenizer
        self.server = VLLMServer(str(model), family, opts, command=command, work_dir=work_dir).start()
        super().__init__(
            str(model),
            base_url=self.server.base_url,
            family=family,
            concurrency=concurrency,
            request_overrides=request_overrides,
        )
        self.health, self.tokenizer = self.server.problem, tokenizer
        self.stats.extras["server_startup_seconds"] = self.server.startup_seconds

    def describe(self) -> dict:
        return self._describe

    def close(self) -> None:
        super().close()
        self.server.close()
