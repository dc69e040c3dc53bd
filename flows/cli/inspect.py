"""``vlmr1 catalog | demo | rewards``: look at a catalog, run the demo, score completions."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

rewards_app = typer.Typer(help="Score completions with the rule-based rewards.", no_args_is_help=True)


@rewards_app.command("list")
def rewards_list() -> None:
    """List the registered rewards."""
    from rich.console import Console
    from rich.table import Table

    from vlmr1.rewards import REGISTRY

    table = Table("name", "task", "version", "what it scores")
    for spec in REGISTRY.values():
        table.add_row(spec.name, spec.task or "any", str(spec.version), spec.doc)
    Console().print(table)


@rewards_app.command("score")
def rewards_score(
    reward: str = typer.Option(..., "--reward", "-r", help="Reward name (see `vlmr1 rewards list`)."),
    frame: str = typer.Option(
        "abs_original", "--frame", "-f", help="Box frame of the completions: abs_original, abs_resized, norm1000."
    ),
    input: Optional[Path] = typer.Argument(None, help="JSON lines file; standard input when omitted or '-'."),
    min_pixels: int = typer.Option(
        56 * 56, help="abs_resized: processor min_pixels (when rows carry no resized size)."
    ),
    max_pixels: int = typer.Option(28 * 28 * 16384, help="abs_resized: processor max_pixels."),
    batch_size: int = typer.Option(4096, help="Rows scored per batch."),
) -> None:
    """Score JSON lines ``{"completion", "solution", "width", "height"}``; print ``{"reward": x}`` per line, in
    order."""
    from vlmr1.boxes import BoxFrame
    from vlmr1.reward_rows import score_lines

    box_frame = BoxFrame(frame, min_pixels=min_pixels, max_pixels=max_pixels)
    stream = sys.stdin if input is None or str(input) == "-" else open(input, encoding="utf-8")
    name = "<stdin>" if stream is sys.stdin else str(input)
    with stream:
        for value in score_lines(reward, stream, name, box_frame, batch_size):
            sys.stdout.write(json.dumps({"reward": value}) + "\n")


def catalog(
    path: Path = typer.Argument(..., help="A catalog file (never created by this command)."),
    section: Optional[list[str]] = typer.Option(
        None, "--section", "-s", help="summary, sources, rejects, recipes, scorers, runs, evaluations (default: all)"
    ),
) -> None:
    """What a catalog holds: sources, rejects by reason with an example, recipes and what they keep, scorer keys,
    training runs, evaluations."""
    import shutil

    from rich.console import Console
    from rich.table import Table

    from curation.overview import overview

    console = Console(width=max(200, shutil.get_terminal_size().columns))  # rows of paths: wide, never narrower
    for name, rows in overview(path, section).items():
        if not rows:
            console.print(f"[bold]{name}[/bold]: none")
            continue
        table = Table(*rows[0].keys(), title=name, title_justify="left")
        for r in rows:
            table.add_row(*("" if v is None else str(v) for v in r.values()))
        console.print(table)


def demo(
    out: Path = typer.Option(Path("demo-out"), help="Where the demo writes its outputs."),
    flow: bool = typer.Option(
        True, help="Also run the curate-and-train flow on the fixtures (ingest to evaluation, about 2 minutes on CPU)."
    ),
) -> None:
    """Run the pipeline on the embedded default and say what it did (Prefect: its own home under OUT)."""
    from flows.demo import isolated_prefect, run_demo

    isolated_prefect(out)
    run_demo(out, flow=flow)


def register(app: typer.Typer) -> None:
    app.add_typer(rewards_app, name="rewards")
    app.command("catalog")(catalog)
    app.command()(demo)
