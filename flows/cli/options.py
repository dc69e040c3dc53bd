"""Options several commands share, and how a command shows a stage's report."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer

CatalogOpt = typer.Option(..., "--catalog", help="The DuckDB catalog file (created if missing).")
ExistingCatalogOpt = typer.Option(..., "--catalog", help="The DuckDB catalog file (`vlmr1 ingest` creates it).")
RayOpt = typer.Option(False, "--ray", help="Run on Ray: a local cluster, or --ray-address's.")
RayAddressOpt = typer.Option(None, "--ray-address", help="An existing Ray cluster ('auto', HOST:6379): --ray there.")


def existing(catalog: Path) -> Path:
    from curation.overview import require_catalog

    return require_catalog(catalog)


def ray_spec(ray: bool, address: Optional[str], actors: Optional[int] = None):
    """The RaySpec the --ray options ask for, or None (then Ray is never imported)."""
    if not ray and address is None and actors is None:
        return None
    import pydantic

    from curation.ray_cluster import RaySpec

    given = {k: v for k, v in {"address": address, "actors": actors}.items() if v is not None}
    try:
        return RaySpec.model_validate(given)
    except pydantic.ValidationError as exc:
        error = exc.errors()[0]
        raise ValueError(f"--ray-{error['loc'][0]}: {error['msg']}") from None


REPORT_FILE: list[Path] = []  # ``vlmr1 --report FILE``: where each command's report is also written, as JSON


def show(report, console=None) -> None:
    """Every stage command ends here: the stage's report on the terminal (and as a JSON line with ``--report``)."""
    import json

    from vlmr1.report import print_report

    print_report(report, console)
    for path in REPORT_FILE:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(report.to_dict(), default=str) + "\n")


@contextmanager
def progress(what: str, unit: str = "samples"):
    """A rich progress bar with rates and ETA; yields ``update(done, total, summary=None)``."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn(what), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
               TimeRemainingColumn())  # fmt: skip
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task(what, total=None, rate="")

        def update(done: int, total: int, s=None) -> None:
            update.last = s  # what an interrupted run kept
            rate = ""
            if s is not None:
                secs = max(s.wall_seconds, 1e-9)
                rate = f"{done / secs:.2f} {unit}/s, {s.tokens / secs:.0f} tokens/s"
            bar.update(task, completed=done, total=total, rate=rate)

        update.last = None
        yield update
