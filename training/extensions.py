"""Where DeepSpeed's JIT-compiled CPU ops live: one folder per Python environment, shared by every entry point.

DeepSpeed compiles its CPU ops with torch's ninja builder on first use (60-120 s on 2 cores). Ninja rebuilds
whenever the compile command changes, and the command names the environment's own paths (its torch headers and
site-packages). So two environments sharing one folder (two clones, a test checkout beside a working tree) evict
each other's build at every switch. Keyed by the environment, each compiles once and never again; every launch
(``vlmr1 train``, the flows' train task, the demo, the ablations and the tests) goes through ``extension_env``.

The ninja that builds is pinned too: torch runs whichever ``ninja`` comes first on PATH, and the environment's own
(pip's 1.13, which DeepSpeed requires) and a system one (Debian's 1.11) write ninja logs the other cannot read, so
each treats the other's build as a changed command and recompiles (40-110 s on 2 cores; it happened at every switch
between a shell with the venv on PATH and one without, twice in one test run). The environment's ninja goes first
on PATH for every build; where it has none, the folder is keyed by the ninja found.
"""

from __future__ import annotations

import hashlib
import os
import shutil
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
    if not _own_ninja().exists():  # no ninja of its own: the one on PATH builds, and names the folder
        parts.append(shutil.which("ninja") or "-")
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:12]


def extensions_dir() -> str:
    """``$TORCH_EXTENSIONS_DIR`` when the user set one, else ``$TMPDIR/vlmr1-torch-extensions/<environment key>``."""
    return os.environ.get("TORCH_EXTENSIONS_DIR") or str(Path(tempfile.gettempdir()) / ROOT_NAME / environment_key())


def _own_ninja() -> Path:
    return Path(sys.executable).parent / "ninja"


def extension_env(environ: dict | None = None) -> dict[str, str]:
    """The variables every process that may build DeepSpeed's ops runs with: its ops folder, and PATH with the
    environment's ninja first (where it has one)."""
    environ = os.environ if environ is None else environ
    path = environ.get("PATH", os.defpath)
    if _own_ninja().exists():
        path = os.pathsep.join([str(_own_ninja().parent), path])
    return {"TORCH_EXTENSIONS_DIR": environ.get("TORCH_EXTENSIONS_DIR") or extensions_dir(), "PATH": path}


def build() -> str:
    """Compile the CPU ops a DeepSpeed run on this machine loads (its shared-memory communication op) into
    ``extensions_dir()`` now, so no first training run pays for it: ``make install`` calls it."""
    os.environ.update(extension_env())
    from deepspeed.ops.op_builder.cpu import ShareMemCommBuilder

    ShareMemCommBuilder().load(verbose=False)
    return os.environ["TORCH_EXTENSIONS_DIR"]


if __name__ == "__main__":
    import time

    t0 = time.monotonic()
    print(f"DeepSpeed CPU ops ready in {build()} ({time.monotonic() - t0:.0f} s)")
