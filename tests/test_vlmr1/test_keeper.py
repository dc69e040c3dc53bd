"""The keeper: whatever runs under it dies with its parent, SIGKILL included, and reports its own exit."""

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid

from kit.processes import tagged_processes, wait_until_gone
from vlmr1.rollout.keeper import Kept

# a command with a child of its own in its process group, like vLLM's API server and its EngineCore
FAMILY = [sys.executable, "-c", "import subprocess, time; subprocess.Popen(['sleep', '300']); time.sleep(300)"]


def test_stop_ends_the_whole_process_group():
    tag = uuid.uuid4().hex
    kept = Kept(FAMILY, env={**os.environ, "VLMR1_PROCESS_TAG": tag})
    deadline = time.monotonic() + 20
    while len(tagged_processes(tag)) < 3 and time.monotonic() < deadline:  # keeper, command, its child
        time.sleep(0.05)
    assert len(tagged_processes(tag)) == 3
    kept.stop()
    assert wait_until_gone(tag, 20) == []


def test_sigkill_of_the_parent_leaves_nothing(tmp_path):
    tag, ready = uuid.uuid4().hex, tmp_path / "ready"
    parent = textwrap.dedent(f"""
        import os, sys, time
        sys.path[:0] = {sys.path!r}
        from vlmr1.rollout.keeper import Kept
        kept = Kept({FAMILY!r}, env={{**os.environ, "VLMR1_PROCESS_TAG": {tag!r}}})
        open({str(ready)!r}, "w").close()
        time.sleep(300)
    """)
    proc = subprocess.Popen([sys.executable, "-c", parent], start_new_session=True)
    deadline = time.monotonic() + 20
    while (not ready.exists() or len(tagged_processes(tag)) < 3) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(tagged_processes(tag)) == 3
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert wait_until_gone(tag, 20) == []


def test_a_command_that_exits_reports_its_status():
    kept = Kept([sys.executable, "-c", "raise SystemExit(7)"])
    deadline = time.monotonic() + 20
    while kept.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert kept.poll() == 7
    assert kept.stop() == 7
