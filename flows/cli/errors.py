"""The CLI's one error table: every outcome a user can cause, mapped in one place to its exit code and one line.

Exit codes: 0 done; 1 the command could not do what it was asked (a stage that failed, an engine that died, or
a bug of ours); 2 a mistake in an option or a file; 3 a catalog another process holds; 130 interrupted (Ctrl-C).
Commands raise; only ``run`` below decides the code, so two commands can never answer the same mistake twice
differently.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Callable

import typer

from vlmr1.errors import Interrupted, StageFailed


@dataclass(frozen=True)
class Outcome:
    code: int
    line: Callable[[BaseException], str]


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines() or [type(exc).__name__]
    return f"error: {lines[0]}" + (f" (+{len(lines) - 1} more lines)" if len(lines) > 1 else "")


def _internal(exc: BaseException) -> str:
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"internal error: {type(exc).__name__}: {first} (run `vlmr1 --debug ...` for the traceback)"


def table() -> list[tuple[tuple[type[BaseException], ...], Outcome]]:
    """(exception types, outcome), first match wins; imported when an error happens, not at start-up."""
    import duckdb

    from curation.catalog import CatalogBusy, CatalogError
    from vlmr1.rollout.openai_engine import EngineError
    from vlmr1.rollout.vllm_options import VLLMError
    from vlmr1.shards import ShardError
    from vlmr1.yamlfiles import ConfigError

    user_errors = (
        ValueError, FileExistsError, FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError,
        ShardError, ConfigError, CatalogError, duckdb.IOException,
    )  # fmt: skip
    return [
        ((Interrupted,), Outcome(130, str)),
        ((CatalogBusy,), Outcome(3, lambda e: f"error: {e}")),
        ((StageFailed,), Outcome(1, lambda e: f"error: {e}")),
        ((VLLMError, EngineError), Outcome(1, lambda e: f"error: {e}")),  # its log's tail is the news
        (user_errors, Outcome(2, _first_line)),
        ((Exception,), Outcome(1, _internal)),
    ]


def outcome(exc: BaseException) -> Outcome:
    return next(o for types, o in table() if isinstance(exc, types))


def run(app: typer.Typer) -> None:
    """Run the app; an exception becomes its report (a stage's partial one), one line on stderr and its code."""
    import signal

    signal.signal(signal.SIGINT, _interrupt)
    if "--debug" in sys.argv[1:2]:  # a global option: right after `vlmr1`
        app()
        return
    try:
        app()
    except (Exception, Interrupted) as exc:
        if isinstance(exc, StageFailed):
            _show_failure(exc)
        o = outcome(exc)
        typer.echo(o.line(exc), err=True)
        raise SystemExit(o.code) from None


def _show_failure(exc: StageFailed) -> None:
    """What the stage did before it failed, then each failure's whole line (never wrapped in a table cell)."""
    if exc.report is not None:
        from vlmr1.report import print_report

        print_report(exc.report)
    for line in exc.lines:
        typer.echo(line, err=True)


def _interrupt(signum, frame) -> None:
    raise Interrupted("interrupted; the same command goes on from where it stopped")
