"""``vlmr1 review``: parse, call the review stage, print its report."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from flows.cli.options import ExistingCatalogOpt, existing, show


def review(
    rule: Optional[str] = typer.Argument(None, help="A built-in rule whose samples to show (e.g. suspect_label)."),
    catalog: Path = ExistingCatalogOpt,
    recipe: Optional[str] = typer.Option(None, "--recipe", help="Instead: the samples a recipe flags or drops."),
    where: Optional[str] = typer.Option(
        None, "--where", help='Instead: a predicate over sample_features, e.g. "label_score >= 0.3".'
    ),
    scorer: str = typer.Option(
        "latest", "--scorer", help="Whose rollouts to draw: a scorer key, or latest (none when nothing is scored)."
    ),
    limit: int = typer.Option(96, "--limit", min=1, help="Show at most N samples, worst first."),
    out: Optional[Path] = typer.Option(
        None, help="Output folder (default: reports/review/<rule> beside the catalog)."
    ),
) -> None:
    """Look at samples: each image with the label's box and the policy's answers (the consensus marked), worst
    first, as an HTML page and a contact sheet PNG; the rollouts and labels also as COCO files."""
    from curation.quality.recipe import load_recipe
    from curation.review.choose import Choice
    from flows import stages

    existing(catalog)
    choice = Choice(rule=rule, recipe=load_recipe(recipe) if recipe else None, where=where)
    show(stages.review(catalog, choice, out, scorer, limit))


def register(app: typer.Typer) -> None:
    app.command()(review)
