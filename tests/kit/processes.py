"""Find the processes a test started, by an environment tag they all inherit (Linux /proc), zombies excluded.

Tests that must prove "no vLLM process is left" set ``VLMR1_PROCESS_TAG`` in
the environment of what they start: the keeper, vLLM's server, its
EngineCore and Worker all inherit it, and nothing else on the machine has it.
"""

from __future__ import annotations

import time
from pathlib import Path

TAG = "VLMR1_PROCESS_TAG"


def tagged_processes(tag: str) -> list[tuple[int, str]]:
    """(pid, command line) of every live process whose environment has ``VLMR1_PROCESS_TAG=tag``."""
    wanted, found = f"{TAG}={tag}".encode(), []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if wanted not in (proc / "environ").read_bytes().split(b"\0"):
                continue
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if state != "Z":
            found.append((int(proc.name), cmdline[:200]))
    return found


def wait_until_gone(tag: str, timeout: float) -> list[tuple[int, str]]:
    """The tagged processes still alive after up to ``timeout`` seconds (empty as soon as none are)."""
    deadline = time.monotonic() + timeout
    while (left := tagged_processes(tag)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left
