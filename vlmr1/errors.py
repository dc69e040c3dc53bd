"""Outcomes every stage may end in, whichever face called it: the CLI's error table maps each to an exit code and
one line, a Prefect task fails with it."""

from __future__ import annotations


class Interrupted(BaseException):
    """Ctrl-C, with how far the stage got. The CLI's SIGINT handler raises it instead of KeyboardInterrupt, so
    neither click (a blank line, exit 1) nor a per-file ``except Exception`` takes it."""


class StageFailed(RuntimeError):
    """The stage could not do what it was asked (a file that failed, nothing to score, training that died): one
    line says why; ``report`` is what it did before it stopped, shown first, and ``lines`` the whole line of each
    thing that failed (a file each), shown before the summary."""

    def __init__(self, message: str, report=None, lines: list[str] | None = None):
        super().__init__(message)
        self.report, self.lines = report, list(lines or [])
