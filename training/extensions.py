"""Where DeepSpeed's JIT-compiled CPU ops live: one folder per Python environment, shared by every entry point.

DeepSpeed compiles its CPU ops with torch's ninja builder on first use (60-120 s on 2 cores). Ninja rebuilds
whenever the compile command changes, and the command names the environment's own paths (its torch headers and
site-packages). So two environments sharing one folder (two clones, a test checkout beside a working tree) evict
each other's build at every switch. Keyed by the environment, each compiles once and never again; every launch
(``vlmr1 train``, the flows' train task, the demo, the ablations and the tests) goes through ``extensions_dir``.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

ROOT_NAME = "vlmr1-torch-extensions"


def environment_key(prefix: str | None = None) -> str:
    """The environment's identity for compiled ops: its prefix, Python, torch and DeepSpeed versions."""

    def installed(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "-"

    parts = [prefix or sys.prefix, sys.version.split()[0], installed("torch"), installed("deepspeed")]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:12]


def extensions_dir() -> str:
    """``$TORCH_EXTENSIONS_DIR`` when the user set one, else ``$TMPDIR/vlmr1-torch-extensions/<environment key>``."""
    return os.environ.get("TORCH_EXTENSIONS_DIR") or str(Path(tempfile.gettempdir()) / ROOT_NAME / environment_key())


def build() -> str:
    """Compile the CPU ops a DeepSpeed run on this machine loads (its shared-memory communication op) into
    ``extensions_dir()`` now, so no first training run pays for it: ``make install`` calls it."""
    os.environ.setdefault("TORCH_EXTENSIONS_DIR", extensions_dir())
    from deepspeed.ops.op_builder.cpu import ShareMemCommBuilder

    ShareMemCommBuilder().load(verbose=False)
    return os.environ["TORCH_EXTENSIONS_DIR"]


if __name__ == "__main__":
    import time

    t0 = time.monotonic()
    print(f"DeepSpeed CPU ops ready in {build()} ({time.monotonic() - t0:.0f} s)")
