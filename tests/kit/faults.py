"""Faults on purpose, for the tests that prove a pipeline survives them."""

from __future__ import annotations

import os
import signal
from pathlib import Path


class DiesOnce:
    """An engine factory (picklable, for Ray actors) whose engine SIGKILLs its own process the first time it is
    asked to generate with ``seed``; ``marker`` records that it did, so the restarted process carries on."""

    def __init__(self, spec, seed: int, marker: str | Path):
        self.spec, self.seed, self.marker = spec, seed, str(marker)

    def __call__(self):
        engine = self.spec.build()
        generate = engine.generate

        def dying(requests, sampling):
            if sampling.seed == self.seed and not os.path.exists(self.marker):
                Path(self.marker).write_text(str(os.getpid()))
                os.kill(os.getpid(), signal.SIGKILL)
            return generate(requests, sampling)

        engine.generate = dying
        return engine
