"""The ``vlmr1`` command line: one module per command group, each command parse -> stage -> print the report
(``flows.stages``); every error a user can cause is answered by one table (``flows.cli.errors``). Heavy modules are
imported inside commands so start-up stays fast."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from flows.cli import curate, errors, ingest, inspect, review, train

app = typer.Typer(
    help="Curate vision datasets into GRPO training sets (VLM-R1 style) and train on them.", no_args_is_help=True
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"vlmr1-curate {version('vlmr1-curate')}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    debug: bool = typer.Option(False, "--debug", help="Show an error's traceback instead of its one line."),
    report: Optional[Path] = typer.Option(
        None, "--report", help="Also append the stage's report to this file as a JSON line (for scripts)."
    ),
) -> None:
    """vlmr1-curate."""
    from flows.cli.options import REPORT_FILE

    REPORT_FILE[:] = [report] if report else []


app.add_typer(ingest.app, name="ingest")
curate.register(app)
train.register(app)
inspect.register(app)
review.register(app)


def run() -> None:
    """The ``vlmr1`` entry point (exit codes: ``flows.cli.errors``)."""
    errors.run(app)


if __name__ == "__main__":
    run()
