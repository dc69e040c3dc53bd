"""Run a command so that it dies with us, however we die: the keeper between us and a vLLM server or worker.

SIGKILL of a vLLM API server orphans its EngineCore and Worker processes
(measured: they kept running). So the command runs in a session and process
group of its own, started by this small stdlib-only keeper, which

- waits on a pipe whose write end only the parent holds: when the parent
  exits for any reason (SIGKILL included) the pipe reads EOF and the keeper
  terminates the command's whole process group (SIGTERM, then SIGKILL);
- sets PDEATHSIG on the command (Linux), so the command gets SIGTERM even if
  the keeper itself is SIGKILLed (the keeper's main thread forks it and lives
  as long as the keeper: PDEATHSIG follows the forking thread, not the process);
- exits with the command's status when the command exits by itself.

The keeper is in its own session too, so a signal to the parent's process
group (Prefect cancelling a flow run, Ctrl-C) reaches the keeper only through
the pipe, never half-way.

    python keeper.py FD -- COMMAND...   (FD: the pipe's read end, inherited)

``Kept`` is the parent's side: it starts the keeper and, on ``stop()``, closes the pipe.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

GRACE_SECONDS = 10.0


def _pdeathsig() -> None:
    """In the child before exec: SIGTERM when the keeper dies (Linux only; elsewhere the pipe alone guards)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass


def _stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM the command's process group, wait, then SIGKILL whatever is left of it."""
    for sig, wait in ((signal.SIGTERM, GRACE_SECONDS), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        try:  # the leader is gone; its children may not be
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return


def main(argv: list[str]) -> int:
    fd, sep, command = int(argv[0]), argv[1], argv[2:]
    if sep != "--" or not command:
        print("usage: keeper.py FD -- COMMAND...", file=sys.stderr)
        return 2
    proc = subprocess.Popen(command, start_new_session=True, preexec_fn=_pdeathsig, pass_fds=())
    parent_gone = threading.Event()

    def watch() -> None:
        while os.read(fd, 4096):
            pass
        parent_gone.set()
        _stop_group(proc)

    threading.Thread(target=watch, daemon=True).start()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: _stop_group(proc))
    code = proc.wait()
    _stop_group(proc)  # the leader exited by itself: its children go with it
    return 0 if parent_gone.is_set() else code


class Kept:
    """A command running under a keeper; ``stop()`` (or our death) ends its whole process group."""

    def __init__(self, command: list[str], *, env: dict | None = None, **popen):
        read, self._write = os.pipe()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-I", __file__, str(read), "--", *command],
                env=env,
                pass_fds=(read,),
                start_new_session=True,
                **popen,
            )
        finally:
            os.close(read)

    def poll(self) -> int | None:
        return self.proc.poll()

    def stop(self, timeout: float = GRACE_SECONDS + 10) -> int | None:
        """Close the pipe: the keeper stops the command's group and exits. Idempotent."""
        if self._write is not None:
            os.close(self._write)
            self._write = None
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
