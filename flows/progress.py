"""Progress of a long stage in the Prefect UI: a progress artifact and a log line with rate and ETA, at most
every few seconds (a stage's artifacts otherwise say nothing until it ends)."""

from __future__ import annotations

import contextvars
import threading
import time
from uuid import UUID


class StageProgress:
    """``update(done, total)`` from the task or any thread it starts (the scorer calls back from its merge
    thread): the task's context is captured when this is made, and updates take a lock."""

    def __init__(self, key: str, what: str, unit: str, every: float = 5.0):
        from prefect.logging import get_run_logger

        self.key, self.what, self.unit, self.every = key, what, unit, every
        self.t0, self.last = time.monotonic(), float("-inf")
        self.artifact: UUID | None = None
        self.logger, self.context, self.lock = get_run_logger(), contextvars.copy_context(), threading.Lock()

    def line(self, done: int, total: int) -> str:
        elapsed = time.monotonic() - self.t0
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = f", about {(total - done) / rate:.0f} s left" if rate > 0 and total > done else ""
        return f"{self.what}: {done}/{total} {self.unit} ({rate:.2f} {self.unit}/s{eta})"

    def update(self, done: int, total: int) -> None:
        with self.lock:
            now = time.monotonic()
            if now - self.last < self.every and done < total:
                return
            self.last = now
            self.context.run(self._publish, done, total)

    def _publish(self, done: int, total: int) -> None:
        from prefect.artifacts import create_progress_artifact, update_progress_artifact

        percent, text = 100.0 * done / max(total, 1), self.line(done, total)
        self.logger.info(text)
        if self.artifact is None:
            self.artifact = create_progress_artifact(percent, key=self.key, description=text)
        else:
            update_progress_artifact(self.artifact, percent, description=text)
