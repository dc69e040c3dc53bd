"""The ``vlmr1`` command line. Heavy modules are imported inside commands so start-up stays fast."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(help="Curate vision datasets into GRPO training sets (VLM-R1 style) and train on them.", no_args_is_help=True)
rewards_app = typer.Typer(help="Score completions with the rule-based rewards.", no_args_is_help=True)
app.add_typer(rewards_app, name="rewards")


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"vlmr1-curate {version('vlmr1-curate')}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """vlmr1-curate."""


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
    frame: str = typer.Option("abs_original", "--frame", "-f", help="Box frame of the completions: abs_original, abs_resized, norm1000."),
    input: Optional[Path] = typer.Argument(None, help="JSON lines file; standard input when omitted or '-'."),
    min_pixels: int = typer.Option(56 * 56, help="abs_resized: processor min_pixels (when rows carry no resized size)."),
    max_pixels: int = typer.Option(28 * 28 * 16384, help="abs_resized: processor max_pixels."),
    batch_size: int = typer.Option(4096, help="Rows scored per batch."),
) -> None:
    """Score JSON lines ``{"completion", "solution", "width", "height"}``; print ``{"reward": x}`` per line, in order."""
    from vlmr1.boxes import BoxFrame
    from vlmr1.rewards import get_reward, score_rows

    try:
        get_reward(reward)
        box_frame = BoxFrame(frame, min_pixels=min_pixels, max_pixels=max_pixels)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    stream = sys.stdin if input is None or str(input) == "-" else open(input, encoding="utf-8")
    name = "<stdin>" if stream is sys.stdin else str(input)
    out = sys.stdout
    pending: list[dict] = []

    def flush() -> None:
        for value in score_rows(reward, pending, box_frame):
            out.write(json.dumps({"reward": value}) + "\n")
        pending.clear()

    with stream:
        for lineno, line in enumerate(stream, 1):
            if not line.strip():
                continue
            try:
                pending.append(_reward_row(line, f"{name}:{lineno}"))
            except ValueError as exc:
                typer.echo(str(exc), err=True)
                raise typer.Exit(2) from None
            if len(pending) >= batch_size:
                flush()
        flush()


def _reward_row(line: str, where: str) -> dict:
    """One input row, validated; errors name the file and line."""
    from vlmr1.records import parse_solution

    try:
        row = json.loads(line)
    except ValueError as exc:
        raise ValueError(f"{where}: not JSON: {exc}") from None
    if not isinstance(row, dict):
        raise ValueError(f"{where}: expected a JSON object")
    for key in ("solution", "width", "height"):
        if key not in row:
            raise ValueError(f"{where}: missing field {key!r}")
    if not isinstance(row.get("completion", ""), str):
        raise ValueError(f"{where}: completion must be a string")
    for key in ("width", "height", "resized_width", "resized_height"):
        if key in row and (not isinstance(row[key], int) or isinstance(row[key], bool) or row[key] <= 0):
            raise ValueError(f"{where}: {key} must be a positive integer, got {row[key]!r}")
    if row.get("task", "rec") not in ("rec", "ovd"):
        raise ValueError(f"{where}: task must be 'rec' or 'ovd', got {row['task']!r}")
    if ("resized_width" in row) != ("resized_height" in row):
        raise ValueError(f"{where}: give both resized_width and resized_height, or neither")
    row["solution"] = parse_solution(row["solution"], f"{where}: solution")
    return row


@app.command()
def demo(out: Path = typer.Option(Path("demo-out"), help="Where the demo writes its outputs.")) -> None:
    """Run the pipeline on the embedded default and say what it did."""
    from flows.demo import run_demo

    run_demo(out)


if __name__ == "__main__":
    app()
